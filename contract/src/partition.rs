//! Which partition a customer's events go to: the one function every producer, ingest and (with
//! scale-out) the query router agree on.
//!
//! Events are keyed by the customer ID as decimal text, and the partition is Kafka's default for
//! keyed messages: the Java producer's `murmur2(key) & 0x7fffffff % partitions`, which librdkafka
//! calls `murmur2_random` (clv's producers set it; librdkafka's own default, `consistent_random`, uses
//! CRC32 and would put a customer on another partition than a Java or Kafka Streams producer).
//! Third-party producers must use the same: a Java/Kotlin/Scala client with its default partitioner,
//! librdkafka-based ones (confluent-kafka-python, kcat `-X partitioner=murmur2_random`, Go's
//! confluent-kafka-go) with `partitioner=murmur2_random`.

/// Kafka's murmur2 hash of `data` (the Java client's `Utils.murmur2`, seed `0x9747b28c`).
pub fn murmur2(data: &[u8]) -> i32 {
    const SEED: u32 = 0x9747_b28c;
    const M: u32 = 0x5bd1_e995;
    const R: u32 = 24;
    let length = data.len();
    let mut h: u32 = SEED ^ (length as u32);
    let chunks = data.chunks_exact(4);
    let tail = chunks.remainder();
    for chunk in chunks {
        let mut k = u32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M);
        h ^= k;
    }
    if tail.len() >= 3 {
        h ^= u32::from(tail[2]) << 16;
    }
    if tail.len() >= 2 {
        h ^= u32::from(tail[1]) << 8;
    }
    if !tail.is_empty() {
        h ^= u32::from(tail[0]);
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^= h >> 15;
    h as i32
}

/// The message key of a customer's events: its ID as decimal text, written on the stack (a key
/// costs no allocation).
#[derive(Debug, Clone, Copy)]
pub struct Key {
    digits: [u8; 20],
    start: usize,
}

impl Key {
    /// The key's bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.digits[self.start..]
    }
}

/// The message key of `customer_id`'s events.
pub fn key(customer_id: u64) -> Key {
    // u64::MAX has 20 digits.
    let mut key = Key {
        digits: [b'0'; 20],
        start: 20,
    };
    let mut rest = customer_id;
    loop {
        key.start -= 1;
        key.digits[key.start] = b'0' + (rest % 10) as u8;
        rest /= 10;
        if rest == 0 {
            break key;
        }
    }
}

/// The partition of `customer_id`'s events in a topic of `partitions` partitions (at least 1).
pub fn of_customer(customer_id: u64, partitions: u32) -> i32 {
    let positive = (murmur2(key(customer_id).as_bytes()) & 0x7fff_ffff) as u32;
    (positive % partitions.max(1)) as i32
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The Java client's own test vectors (`UtilsTest.testMurmur2`).
    #[test]
    fn murmur2_is_kafkas() {
        let cases: [(&[u8], i32); 6] = [
            (b"21", -973_932_308),
            (b"foobar", -790_332_482),
            (b"a-little-bit-long-string", -985_981_536),
            (b"a-little-bit-longer-string", -1_486_304_829),
            (
                b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8",
                -58_897_971,
            ),
            (b"abc", 479_470_107),
        ];
        for (data, hash) in cases {
            assert_eq!(murmur2(data), hash, "{}", String::from_utf8_lossy(data));
        }
    }

    #[test]
    fn a_key_is_the_decimal_text_of_the_id() {
        for id in [0, 7, 10, 12_345, 99_999_999, u64::MAX] {
            assert_eq!(key(id).as_bytes(), id.to_string().as_bytes());
        }
    }

    #[test]
    fn every_customer_has_one_partition_in_range() {
        for customer in [1, 12346, 17850, (1 << 53) - 1] {
            for partitions in [1, 4, 12] {
                let p = of_customer(customer, partitions);
                assert!((0..partitions as i32).contains(&p));
                assert_eq!(p, of_customer(customer, partitions));
            }
        }
    }
}
