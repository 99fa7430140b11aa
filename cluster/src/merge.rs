//! The merge of the owners' lists (each the first `k` of its own partitions, in the ranking order)
//! into the group's first `k`: what one scorer holding every partition would list.

/// The first `k` of `lists` in the ranking order: higher `value` first, ties by lower `id` (the
/// order of `scorer::population`), each list already in that order. Exact as long as each list holds
/// the first `k` of its part (a customer is in one part only).
pub fn first_k<T>(
    lists: Vec<Vec<T>>,
    k: usize,
    value: impl Fn(&T) -> f64,
    id: impl Fn(&T) -> u64,
) -> Vec<T> {
    let mut all: Vec<T> = lists.into_iter().flatten().collect();
    all.sort_by(|a, b| {
        value(b)
            .total_cmp(&value(a))
            .then_with(|| id(a).cmp(&id(b)))
    });
    all.truncate(k);
    all
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_merge_is_the_first_k_of_the_union_with_ties_by_id() {
        let a = vec![(9.0, 4u64), (5.0, 1), (5.0, 7)];
        let b = vec![(9.0, 2u64), (6.0, 3), (1.0, 8)];
        let merged = first_k(vec![a.clone(), b.clone()], 4, |r| r.0, |r| r.1);
        assert_eq!(merged, vec![(9.0, 2), (9.0, 4), (6.0, 3), (5.0, 1)]);
        let all = first_k(vec![a, b, vec![]], 100, |r| r.0, |r| r.1);
        assert_eq!(all.len(), 6);
        assert_eq!(all.last(), Some(&(1.0, 8)));
    }
}
