//! Ordering of release versions, so "newest on the channel" is well defined.
//!
//! Both calendar versions (`2026.1`, `2026.1.2`) and semantic versions (`1.4.0`, `1.5.0-rc.1`) are
//! numeric dot-separated parts with an optional pre-release suffix, so one rule orders both:
//! compare the numeric parts left to right (a missing part counts as 0, so `2026.1` equals
//! `2026.1.0`); at equal numbers a release without suffix is newer than one with a suffix
//! (`1.5.0` > `1.5.0-rc.2`); suffixes compare by semver's pre-release rules (numeric identifiers
//! numerically, others lexically). A leading `v` is ignored. Unparseable versions sort first.

use std::cmp::Ordering;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReleaseVersion {
    numbers: Vec<u64>,
    pre: Option<Vec<String>>,
    valid: bool,
}

impl ReleaseVersion {
    pub fn parse(s: &str) -> Self {
        let s = s.strip_prefix('v').unwrap_or(s);
        let (core, pre) = match s.split_once('-') {
            Some((c, p)) => (c, Some(p.split('.').map(str::to_string).collect())),
            None => (s, None),
        };
        let numbers: Result<Vec<u64>, _> = core.split('.').map(str::parse::<u64>).collect();
        match numbers {
            Ok(mut numbers) => {
                while numbers.len() > 1 && numbers.last() == Some(&0) {
                    numbers.pop();
                }
                Self {
                    numbers,
                    pre,
                    valid: true,
                }
            }
            Err(_) => Self {
                numbers: Vec::new(),
                pre: None,
                valid: false,
            },
        }
    }
}

fn cmp_pre_ident(a: &str, b: &str) -> Ordering {
    match (a.parse::<u64>(), b.parse::<u64>()) {
        (Ok(x), Ok(y)) => x.cmp(&y),
        (Ok(_), Err(_)) => Ordering::Less,
        (Err(_), Ok(_)) => Ordering::Greater,
        (Err(_), Err(_)) => a.cmp(b),
    }
}

impl Ord for ReleaseVersion {
    fn cmp(&self, other: &Self) -> Ordering {
        self.valid
            .cmp(&other.valid)
            .then_with(|| {
                let n = self.numbers.len().max(other.numbers.len());
                (0..n)
                    .map(|i| {
                        let a = self.numbers.get(i).copied().unwrap_or(0);
                        let b = other.numbers.get(i).copied().unwrap_or(0);
                        a.cmp(&b)
                    })
                    .find(|o| o.is_ne())
                    .unwrap_or(Ordering::Equal)
            })
            .then_with(|| match (&self.pre, &other.pre) {
                (None, None) => Ordering::Equal,
                (None, Some(_)) => Ordering::Greater,
                (Some(_), None) => Ordering::Less,
                (Some(a), Some(b)) => a
                    .iter()
                    .zip(b)
                    .map(|(x, y)| cmp_pre_ident(x, y))
                    .find(|o| o.is_ne())
                    .unwrap_or_else(|| a.len().cmp(&b.len())),
            })
    }
}

impl PartialOrd for ReleaseVersion {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

#[cfg(test)]
mod tests {
    use super::ReleaseVersion as V;

    #[test]
    fn calendar_and_semantic_versions_order_as_people_expect() {
        let ordered = [
            "not-a-version",
            "2025.2",
            "2025.2.1",
            "2025.10",
            "2026.1-rc.1",
            "2026.1-rc.2",
            "2026.1-rc.10",
            "2026.1",
            "v2026.1.1",
        ];
        for w in ordered.windows(2) {
            assert!(V::parse(w[0]) < V::parse(w[1]), "{} < {}", w[0], w[1]);
        }
        assert_eq!(V::parse("2026.1"), V::parse("2026.1.0"));
        assert!(V::parse("1.10.0") > V::parse("1.9.3"));
        assert!(V::parse("1.5.0-alpha") < V::parse("1.5.0-alpha.1"));
    }
}
