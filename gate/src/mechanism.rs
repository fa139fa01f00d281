//! The release rule: what count leaves the site for a true count.
//!
//! Rules, in order (docs/feasibility.md has the numbers and why):
//! 1. Laplace noise with scale `b = sensitivity / ε`, sensitivity 1 (one patient more or less
//!    changes a count by at most 1). The MII DSF process draws the same way
//!    (mii-process-feasibility v1.0.0.11, `FeasibilityCachingLaplaceCountObfuscator.laplace`):
//!    `u` uniform in (-½, ½), `x = -b·sgn(u)·ln(1 - 2|u|)`.
//! 2. Suppression: a noisy count below `suppressBelow` is reported as **0**, the MII convention for
//!    small counts ("results below 5 become 0" in direct-broker mode; the DSF process floors at 0).
//!    Suppression acts on the noisy value, not the true one: a rule on the true count would release
//!    "true < 5" deterministically and void the ε guarantee; on the noisy value it is
//!    post-processing, which keeps it.
//! 3. Rounding to the nearest multiple of `roundTo` (half away from zero), floored at 0.
//!
//! All three are pure functions of the true count and one uniform draw, so the tests can table
//! them and check the distribution with a seeded generator.

use rand_core::RngCore;

/// The privacy rules one gate enforces (from the FeasibilityEndpoint's `spec.privacy`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Rules {
    pub epsilon: f64,
    pub round_to: u64,
    pub suppress_below: u64,
}

/// Sensitivity of a patient count: adding or removing one patient changes it by at most 1.
pub const SENSITIVITY: f64 = 1.0;

/// A uniform draw in the open interval (-½, ½) from 53 random bits.
pub fn uniform_centered(rng: &mut impl RngCore) -> f64 {
    loop {
        // 53 bits give every double in [0, 1) on a grid of 2^-53.
        let unit = (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
        let u = unit - 0.5;
        // u = -½ would give ln(0); redraw (probability 2^-53).
        if u > -0.5 {
            return u;
        }
    }
}

/// Inverse CDF of the Laplace distribution with mean 0 and scale `b`, at `u` in (-½, ½).
pub fn laplace_from_uniform(u: f64, b: f64) -> f64 {
    -b * u.signum() * (1.0 - 2.0 * u.abs()).ln()
}

/// One Laplace draw with scale `SENSITIVITY / epsilon`.
pub fn laplace(rng: &mut impl RngCore, epsilon: f64) -> f64 {
    laplace_from_uniform(uniform_centered(rng), SENSITIVITY / epsilon)
}

/// The count released for `noisy` (true count plus noise): suppression, then rounding.
pub fn release(noisy: f64, rules: &Rules) -> u64 {
    if !noisy.is_finite() || noisy < rules.suppress_below as f64 {
        return 0;
    }
    let step = rules.round_to.max(1) as f64;
    let rounded = (noisy / step).round() * step;
    if rounded <= 0.0 { 0 } else { rounded as u64 }
}

/// Draws noise for `true_count` and applies the release rule.
pub fn obfuscate(true_count: u64, rules: &Rules, rng: &mut impl RngCore) -> u64 {
    release(true_count as f64 + laplace(rng, rules.epsilon), rules)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_chacha::ChaCha20Rng;
    use rand_core::SeedableRng;

    const MII: Rules = Rules {
        epsilon: 0.5,
        round_to: 10,
        suppress_below: 5,
    };

    #[test]
    fn rounding_and_suppression_table() {
        let coarse = Rules {
            epsilon: 0.5,
            round_to: 100,
            suppress_below: 20,
        };
        // (noisy value, rules, released)
        let rows: &[(f64, Rules, u64)] = &[
            (-7.3, MII, 0),       // negative: floored
            (0.0, MII, 0),        // zero stays zero
            (4.99, MII, 0),       // below suppressBelow 5: reported as 0
            (5.0, MII, 10),       // at the threshold: released, rounded half up
            (14.9, MII, 10),      // nearest multiple of 10
            (15.0, MII, 20),      // half rounds away from zero
            (1234.4, MII, 1230),  // large counts keep their magnitude
            (19.9, coarse, 0),    // below a raised threshold
            (20.0, coarse, 0),    // released but rounds to 0 at roundTo 100
            (50.0, coarse, 100),  // half rounds up
            (149.0, coarse, 100), //
            (f64::NAN, MII, 0),   // never releases garbage
            (f64::INFINITY, MII, 0),
        ];
        for (noisy, rules, want) in rows {
            assert_eq!(
                release(*noisy, rules),
                *want,
                "noisy {noisy} with {rules:?}"
            );
        }
    }

    #[test]
    fn released_counts_are_multiples_of_round_to() {
        let mut rng = ChaCha20Rng::seed_from_u64(7);
        for true_count in [0u64, 3, 9, 42, 1000] {
            for _ in 0..200 {
                let r = obfuscate(true_count, &MII, &mut rng);
                assert_eq!(r % 10, 0, "released {r} for {true_count}");
            }
        }
    }

    fn laplace_cdf(x: f64, b: f64) -> f64 {
        if x < 0.0 {
            0.5 * (x / b).exp()
        } else {
            1.0 - 0.5 * (-x / b).exp()
        }
    }

    /// Kolmogorov–Smirnov statistic of `samples` against Laplace(0, b).
    fn ks_statistic(samples: &mut [f64], b: f64) -> f64 {
        samples.sort_by(f64::total_cmp);
        let n = samples.len() as f64;
        samples
            .iter()
            .enumerate()
            .map(|(i, x)| {
                let f = laplace_cdf(*x, b);
                (f - i as f64 / n).abs().max(((i + 1) as f64 / n - f).abs())
            })
            .fold(0.0, f64::max)
    }

    #[test]
    fn noise_is_laplace_by_kolmogorov_smirnov() {
        let n = 20_000;
        for (seed, epsilon) in [(1u64, 0.5), (2, 0.1), (3, 1.0)] {
            let mut rng = ChaCha20Rng::seed_from_u64(seed);
            let mut samples: Vec<f64> = (0..n).map(|_| laplace(&mut rng, epsilon)).collect();
            let d = ks_statistic(&mut samples, SENSITIVITY / epsilon);
            // Critical value at α = 0.01: 1.628 / √n.
            let critical = 1.628 / (n as f64).sqrt();
            assert!(d < critical, "ε {epsilon}: D = {d} ≥ {critical}");
        }
    }

    #[test]
    fn kolmogorov_smirnov_rejects_the_wrong_scale() {
        // The test above can fail: the same samples against twice the scale are rejected.
        let n = 20_000;
        let mut rng = ChaCha20Rng::seed_from_u64(1);
        let mut samples: Vec<f64> = (0..n).map(|_| laplace(&mut rng, 0.5)).collect();
        let d = ks_statistic(&mut samples, 2.0 * SENSITIVITY / 0.5);
        assert!(d > 1.628 / (n as f64).sqrt(), "D = {d}");
    }

    #[test]
    fn inverse_cdf_matches_known_quantiles() {
        // Median 0; the 75 % quantile of Laplace(0, b) is b·ln 2.
        assert_eq!(laplace_from_uniform(0.0, 2.0), 0.0);
        let q75 = laplace_from_uniform(0.25, 2.0);
        assert!((q75 - 2.0 * 2f64.ln()).abs() < 1e-12, "{q75}");
        let q25 = laplace_from_uniform(-0.25, 2.0);
        assert!((q25 + 2.0 * 2f64.ln()).abs() < 1e-12, "{q25}");
    }
}
