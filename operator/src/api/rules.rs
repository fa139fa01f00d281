//! CEL rule texts that are generated rather than written inline: from data the operator owns
//! (the time zones jiff bundles) or repeated with small differences (the five cron fields).
//!
//! Every function used here exists in Kubernetes 1.33 (see docs/concepts.md#validation for the
//! list and the version that introduced each).

use jiff::tz::TimeZoneDatabase;

/// A CEL string literal for `s`.
pub(crate) fn cel_str(s: &str) -> String {
    format!("'{}'", s.replace('\\', "\\\\").replace('\'', "\\'"))
}

/// Durations in this API are `([0-9]+(h|m|s))+`; this refuses those that add up to zero.
pub const NONZERO_DURATION: &str = "!self.matches('^(0+[hms])+$')";

/// No spaces, tabs or line breaks anywhere (a trailing space from a copy and paste is the usual
/// one). kube-apiserver's `isURL` follows Go's `net/url`, which accepts spaces in a path.
pub const NO_WHITESPACE: &str = r"!self.matches('\\s')";

/// A plain address, not a link: `mailto:` or any other URL scheme in front of it.
pub const NO_SCHEME: &str = "!self.matches('^[A-Za-z][A-Za-z0-9+.-]*:')";

/// A lowercase RFC 1123 subdomain: what Kubernetes accepts as the name of most objects.
pub const DNS_SUBDOMAIN: &str =
    r"self.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$')";

/// Five whitespace-separated fields, with nothing around them but whitespace.
const FIVE_FIELDS: &str = r"^\s*(\S+\s+){4}\S+\s*$";

/// One field of a cron schedule, as `release::window` parses it.
struct CronField {
    /// A value, as a regex: a number in range (leading zeros allowed) or a name.
    value: &'static str,
    /// What a site admin reads when the field is wrong.
    message: &'static str,
}

/// In schedule order: minute, hour, day of month, month, day of week.
const CRON_FIELDS: [CronField; 5] = [
    CronField {
        value: "0*[1-5]?[0-9]",
        message: "schedule: the minute (1st field) must be 0-59, '*', a list (0,30), a range (0-29) or a step (*/15)",
    },
    CronField {
        value: "0*(?:1?[0-9]|2[0-3])",
        message: "schedule: the hour (2nd field) must be 0-23, '*', a list (1,13), a range (1-5) or a step (*/2); midnight is 0, not 24",
    },
    CronField {
        value: "0*(?:[1-9]|[12][0-9]|3[01])",
        message: "schedule: the day of the month (3rd field) must be 1-31, '*', a list (1,15), a range (1-7) or a step (*/2)",
    },
    CronField {
        value: "0*(?:[1-9]|1[0-2])|(?i:JAN|FEB|MAR|APR|MAY|JUN|JUL|AUG|SEP|OCT|NOV|DEC)",
        message: "schedule: the month (4th field) must be 1-12 or JAN-DEC (English three-letter names), '*', a list, a range or a step",
    },
    CronField {
        value: "0*[0-7]|(?i:SUN|MON|TUE|WED|THU|FRI|SAT)",
        message: "schedule: the day of the week (5th field) must be 0-7 (0 and 7 are Sunday) or SUN-SAT (English three-letter names), '*', a list (SAT,SUN), a range (MON-FRI) or a step",
    },
];

/// The rule for cron field `i` (0 = minute): `*`, a value or a range, each with an optional
/// step of at least 1, in a comma-separated list. Only checked when there are five fields, so
/// a wrong field count is reported once, by its own rule.
pub fn cron_field_rule(i: usize) -> String {
    let Some(field) = CRON_FIELDS.get(i) else {
        return "true".to_string();
    };
    let v = format!("(?:{})", field.value);
    let item = format!(r"(?:\*|{v}(?:-{v})?)(?:/0*[1-9][0-9]{{0,8}})?");
    let list = format!("{item}(?:,{item})*");
    let fields: Vec<&str> = (0..5)
        .map(|j| if j == i { list.as_str() } else { r"\S+" })
        .collect();
    let whole = format!(r"^\s*{}\s*$", fields.join(r"\s+"));
    format!(
        "!self.matches({}) || self.matches({})",
        cel_str(FIVE_FIELDS),
        cel_str(&whole)
    )
}

pub fn cron_field_message(i: usize) -> String {
    CRON_FIELDS
        .get(i)
        .map_or("schedule: invalid field", |f| f.message)
        .to_string()
}

/// The IANA time zone names the operator can evaluate a maintenance window in: those of jiff's
/// bundled tz database, which is the one the operator uses (the crate is built with
/// `tzdb-bundle-always` and without the system zoneinfo).
pub fn time_zone_names() -> Vec<String> {
    let db = TimeZoneDatabase::bundled();
    let mut names: Vec<String> = db.available().map(|n| n.as_str().to_string()).collect();
    names.sort();
    names
}

/// `self in [...]`: exact names, so a misspelt zone is refused at the door instead of blocking
/// the next upgrade months later.
pub fn time_zone_rule() -> String {
    let names: Vec<String> = time_zone_names().iter().map(|n| cel_str(n)).collect();
    format!("self in [{}]", names.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::release::window::Schedule;

    fn accepted(rule: &str, value: &str) -> bool {
        let schema = serde_json::json!({"type": "string",
            "x-kubernetes-validations": [{"rule": rule}]});
        miracolix_validation::validate_with_schema(
            &schema,
            &serde_json::json!(value),
            None,
            miracolix_validation::UnknownFields::Strict,
            None,
        )
        .is_ok()
    }

    /// Whatever the rules admit, the operator's parser takes, and the other way round for the
    /// documented syntax.
    #[test]
    fn cron_rules_agree_with_the_schedule_parser() {
        let rules: Vec<String> = (0..5).map(cron_field_rule).collect();
        let admitted = |s: &str| rules.iter().all(|r| accepted(r, s));
        for good in [
            "0 2 * * 6",
            "*/15 8-18/2 * JAN,jul mon-FRI",
            "0 0 * * 7",
            "50/5 * * * 5-7",
            "00 02 01 01 00",
            "59 23 31 12 SAT",
            "0 2 1 * MON",
            "0,30 * 1-7,15 * *",
            "  0 2 * * sun  ",
        ] {
            assert!(admitted(good), "{good:?} must be admitted");
            assert!(Schedule::parse(good).is_ok(), "{good:?} must parse");
        }
        for (bad, field) in [
            ("60 2 * * *", 0),
            ("0 24 * * *", 1),
            ("0 2 0 * *", 2),
            ("0 2 32 * *", 2),
            ("0 2 * 13 *", 3),
            ("0 2 * MAI *", 3),
            ("0 2 * * 8", 4),
            ("0 2 * * SO", 4),
            ("0 2 * * Sa", 4),
            ("0 2 * * MO-FR", 4),
            ("*/0 * * * *", 0),
            ("0 2 ,1 * *", 2),
            ("0 2 * FOO *", 3),
            ("0 2 * * MON-", 4),
        ] {
            assert!(
                !accepted(&rules[field], bad),
                "{bad:?} must be refused by the rule of field {field}"
            );
            for (j, r) in rules.iter().enumerate() {
                if j != field {
                    assert!(
                        accepted(r, bad),
                        "{bad:?}: only field {field} is wrong, not {j}"
                    );
                }
            }
            assert!(
                Schedule::parse(bad).is_err(),
                "{bad:?} must not parse either"
            );
        }
        // A wrong field count is the field count rule's business alone.
        assert!(admitted("0 2 * *"));
    }

    #[test]
    fn time_zones_are_the_operators() {
        let names = time_zone_names();
        for zone in [
            "UTC",
            "Europe/Berlin",
            "America/Port-au-Prince",
            "Etc/GMT+1",
        ] {
            assert!(names.iter().any(|n| n == zone), "{zone} is listed");
            assert!(jiff::tz::TimeZone::get(zone).is_ok(), "{zone} is evaluable");
        }
        for name in &names {
            assert!(
                jiff::tz::TimeZone::get(name).is_ok(),
                "{name} is listed, so the operator must be able to evaluate it"
            );
        }
        let rule = time_zone_rule();
        assert!(accepted(&rule, "Europe/Berlin"));
        for bad in [
            "Europe/Berln",
            "europe/berlin",
            "CET+1 summer",
            "Europe/Berlin ",
        ] {
            assert!(!accepted(&rule, bad), "{bad:?} must be refused");
        }
    }

    #[test]
    fn zero_durations_are_refused() {
        for zero in ["0s", "0m", "0h", "00h0m", "0h0m0s"] {
            assert!(!accepted(NONZERO_DURATION, zero), "{zero}");
        }
        for ok in ["1s", "30m", "0h30m", "10h"] {
            assert!(accepted(NONZERO_DURATION, ok), "{ok}");
        }
    }

    #[test]
    fn small_string_rules() {
        assert!(!accepted(NO_WHITESPACE, "https://a.example/x "));
        assert!(!accepted(NO_WHITESPACE, "https://a.example/\n"));
        assert!(accepted(NO_WHITESPACE, "https://a.example/x"));
        assert!(!accepted(NO_SCHEME, "mailto:uac@uk-erlangen.de"));
        assert!(!accepted(NO_SCHEME, "MAILTO:uac@uk-erlangen.de"));
        assert!(accepted(NO_SCHEME, "uac@uk-erlangen.de"));
        assert!(accepted(DNS_SUBDOMAIN, "miracolix-2026.1"));
        assert!(!accepted(DNS_SUBDOMAIN, "Miracolix-2026.1"));
        assert!(!accepted(DNS_SUBDOMAIN, "miracolix_2026"));
    }
}
