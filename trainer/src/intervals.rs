//! How a forecast's intervals did at its cutoff, beside one interval for everyone.

use chrono::NaiveDate;

use crate::Result;
use crate::backtest::Forecast;
use crate::evaluate::Evaluator;

/// How a forecast's intervals did at its cutoff: its champion's 10th-90th percentile intervals
/// calibrated on its latest validation fold, carried by rank to the predictions at the cutoff
/// ([`models::interval::Calibration::carried_to`], as the production version's are to the customers
/// it serves) and judged on what the customers then spent, beside one interval for everyone (the
/// calibration fold's).
#[derive(Debug, Clone)]
pub struct IntervalCheck {
    /// The forecast's cutoff.
    pub cutoff: NaiveDate,
    /// The champion whose intervals these are.
    pub champion: String,
    /// Its intervals' scores.
    pub ours: models::interval::IntervalScore,
    /// One interval for everyone.
    pub baseline: models::interval::IntervalScore,
}

/// The interval check of `forecast` ([`IntervalCheck`]), or `None` without a positive prediction to
/// calibrate on.
pub fn interval_check(
    evaluator: &mut Evaluator<'_>,
    forecast: &Forecast,
) -> Result<Option<IntervalCheck>> {
    use models::interval::{Calibration, IntervalScore, baseline};
    let Some(fold) = forecast.selection.latest_fold() else {
        return Ok(None);
    };
    let champion = forecast.champion();
    let rows = evaluator.snapshots().evaluated(&forecast.test)?.rows;
    let calibrating = &evaluator.fold(fold)?.predictions;
    let (Some(calibration_predicted), Some(test)) =
        (calibrating.of(champion), forecast.predictions.of(champion))
    else {
        return Ok(None);
    };
    let Some(calibration) = Calibration::fit(calibration_predicted, &calibrating.actual) else {
        return Ok(None);
    };
    let calibration = carry(&calibration, calibration_predicted, test, &rows);
    let actual = &forecast.predictions.actual;
    let ours: Vec<(f64, f64)> = test.iter().map(|p| calibration.interval(*p)).collect();
    let everyone = vec![baseline(&calibrating.actual); actual.len()];
    Ok(Some(IntervalCheck {
        cutoff: forecast.cutoff,
        champion: champion.to_string(),
        ours: IntervalScore::of(&ours, actual),
        baseline: IntervalScore::of(&everyone, actual),
    }))
}

/// `calibration`, fitted on a fold whose predictions were `fitted_on`, carried to a population
/// predicted `predicted` whose rows are `rows`: where intervals stop reaching 0 by the rows' BG/NBD
/// probability of no purchase ([`models::interval::Calibration::carried_with`]), by rank where the
/// rows carry no BG/NBD forecast (the seed's table).
pub fn carry(
    calibration: &models::interval::Calibration,
    fitted_on: &[f64],
    predicted: &[f64],
    rows: &[contract::FeatureRow],
) -> models::interval::Calibration {
    if rows.iter().any(|r| r.extra.bgnbd_expected_purchases > 0.0) {
        let p_no_purchase: Vec<f64> = rows.iter().map(|r| r.extra.bgnbd_p_no_purchase).collect();
        calibration.carried_with(fitted_on, predicted, &p_no_purchase)
    } else {
        calibration.carried_to(fitted_on, predicted)
    }
}

/// The interval checks as a Markdown table, a row per cutoff.
pub fn interval_table(checks: &[IntervalCheck]) -> String {
    let mut out = String::from(
        "| cutoff | champion | coverage | buyers | non-buyers | mean width £ | interval score £ | one interval for everyone: buyers | non-buyers | score £ |\n|---|---|---|---|---|---|---|---|---|---|\n",
    );
    for c in checks {
        out.push_str(&format!(
            "| {} | {} | {:.1}% | {:.1}% | {:.1}% | {:.0} | {:.0} | {:.1}% | {:.1}% | {:.0} |\n",
            c.cutoff,
            c.champion,
            c.ours.coverage * 100.0,
            c.ours.coverage_buyers * 100.0,
            c.ours.coverage_non_buyers * 100.0,
            c.ours.mean_width,
            c.ours.interval_score,
            c.baseline.coverage_buyers * 100.0,
            c.baseline.coverage_non_buyers * 100.0,
            c.baseline.interval_score,
        ));
    }
    out
}
