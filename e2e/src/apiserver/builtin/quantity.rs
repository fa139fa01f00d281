//! `resource.Quantity` as apimachinery parses and serialises it (k8s.io/apimachinery
//! pkg/api/resource/quantity.go at v0.33: `ParseQuantity`, `CanonicalizeBytes`).
//!
//! A quantity is stored in canonical form: the suffix family the client wrote (binary `Ki`…,
//! decimal `m`/`k`…, or an `e` exponent) is kept, and the number becomes the integer mantissa with
//! the largest exponent that loses no precision: `0.5` → `500m`, `1.5Gi` → `1536Mi`,
//! `1000m` → `1`, `1e3` stays `1e3` (exponent form is kept), `0.5Gi` → `512Mi`, `1024` → `1024`,
//! `1500M` → `1500M`. Binary values below 1024, or not whole, print in decimal form (`0.5Ki` →
//! `512`). Precision beyond nano units is rounded up (away from zero), as apimachinery does.

use std::fmt;

/// The error apimachinery's decoder reports for an unparseable quantity (`ErrFormatWrong`).
pub const FORMAT_ERROR: &str =
    "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Format {
    BinarySi,
    DecimalSi,
    DecimalExponent,
}

/// A parsed quantity: `mantissa × 10^scale`, with the format it was written in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Quantity {
    mantissa: i128,
    scale: i32,
    format: Format,
}

/// The finest precision apimachinery keeps (nano units).
const MIN_SCALE: i32 = -9;
/// Keeps the arithmetic in i128 for every realistic value; larger inputs are refused.
const MAX_DIGITS: usize = 30;

impl Quantity {
    pub fn parse(s: &str) -> Option<Self> {
        let s = s.trim_matches(' ');
        let (negative, rest) = match s.as_bytes().first()? {
            b'-' => (true, &s[1..]),
            b'+' => (false, &s[1..]),
            _ => (false, s),
        };
        let number_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let (number, suffix) = rest.split_at(number_end);
        let (int, frac) = number.split_once('.').unwrap_or((number, ""));
        if (int.is_empty() && frac.is_empty()) || frac.contains('.') {
            return None;
        }
        let digits = format!("{int}{frac}");
        let digits = digits.trim_start_matches('0');
        if digits.len() > MAX_DIGITS {
            return None;
        }
        let mut mantissa: i128 = if digits.is_empty() {
            0
        } else {
            digits.parse().ok()?
        };
        let mut scale = -i32::try_from(frac.len()).ok()?;
        let format = match suffix {
            "" => Format::DecimalSi,
            "n" | "u" | "m" | "k" | "M" | "G" | "T" | "P" | "E" => {
                scale += match suffix {
                    "n" => -9,
                    "u" => -6,
                    "m" => -3,
                    "k" => 3,
                    "M" => 6,
                    "G" => 9,
                    "T" => 12,
                    "P" => 15,
                    _ => 18,
                };
                Format::DecimalSi
            }
            "Ki" | "Mi" | "Gi" | "Ti" | "Pi" | "Ei" => {
                let power = match suffix {
                    "Ki" => 1,
                    "Mi" => 2,
                    "Gi" => 3,
                    "Ti" => 4,
                    "Pi" => 5,
                    _ => 6,
                };
                mantissa = mantissa.checked_mul(1024_i128.checked_pow(power)?)?;
                Format::BinarySi
            }
            _ => {
                let exp = suffix
                    .strip_prefix('e')
                    .or_else(|| suffix.strip_prefix('E'))?;
                let digits = exp.trim_start_matches(['+', '-']);
                if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                    return None;
                }
                let e: i32 = exp.parse().ok()?;
                if !(-100..=100).contains(&e) {
                    return None;
                }
                scale += e;
                Format::DecimalExponent
            }
        };
        if negative {
            mantissa = -mantissa;
        }
        let mut q = Self {
            mantissa,
            scale,
            format,
        };
        q.round_to_nano();
        q.normalise();
        Some(q)
    }

    /// Rounds up (away from zero) to nano precision; ceil(ceil(x/10)/10) = ceil(x/100).
    fn round_to_nano(&mut self) {
        let sign = self.mantissa.signum();
        while self.scale < MIN_SCALE {
            let rem = self.mantissa % 10;
            self.mantissa /= 10;
            if rem != 0 {
                self.mantissa += sign;
            }
            self.scale += 1;
        }
    }

    /// Rounded up (away from zero) to milli precision, as `SetDefaults_ResourceList` does.
    pub fn round_up_milli(mut self) -> Self {
        let sign = self.mantissa.signum();
        while self.scale < -3 {
            let rem = self.mantissa % 10;
            self.mantissa /= 10;
            if rem != 0 {
                self.mantissa += sign;
            }
            self.scale += 1;
        }
        self.normalise();
        self
    }

    /// Strips trailing decimal zeros into the scale.
    fn normalise(&mut self) {
        if self.mantissa == 0 {
            self.scale = 0;
            return;
        }
        while self.mantissa % 10 == 0 {
            self.mantissa /= 10;
            self.scale += 1;
        }
    }

    pub fn is_zero(&self) -> bool {
        self.mantissa == 0
    }

    pub fn is_negative(&self) -> bool {
        self.mantissa < 0
    }

    /// Compares values, ignoring format.
    pub fn cmp_value(&self, other: &Self) -> std::cmp::Ordering {
        let scale = self.scale.min(other.scale);
        let widen = |q: &Self| {
            10_i128
                .checked_pow(u32::try_from(q.scale - scale).unwrap_or(0))
                .and_then(|f| q.mantissa.checked_mul(f))
        };
        match (widen(self), widen(other)) {
            (Some(a), Some(b)) => a.cmp(&b),
            // Out of range only for absurd values; order by magnitude of the scale then.
            _ => (self.scale, self.mantissa).cmp(&(other.scale, other.mantissa)),
        }
    }

    /// apimachinery's `Quantity.Value()`: the value as an integer, fractions rounded up.
    pub fn value(&self) -> Option<i128> {
        if self.scale >= 0 {
            return self.as_integer();
        }
        let divisor = 10_i128.checked_pow(u32::try_from(-self.scale).ok()?)?;
        let whole = self.mantissa / divisor;
        Some(if self.mantissa % divisor > 0 {
            whole + 1
        } else {
            whole
        })
    }

    /// The whole value as an integer, when it is whole and fits.
    fn as_integer(&self) -> Option<i128> {
        if self.scale < 0 {
            return None;
        }
        10_i128
            .checked_pow(u32::try_from(self.scale).ok()?)
            .and_then(|f| self.mantissa.checked_mul(f))
    }
}

impl fmt::Display for Quantity {
    /// `CanonicalizeBytes`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.mantissa == 0 {
            return f.write_str("0");
        }
        if self.format == Format::BinarySi
            && let Some(mut n) = self.as_integer().filter(|n| n.abs() >= 1024)
        {
            let mut power = 0;
            while power < 6 && n % 1024 == 0 {
                n /= 1024;
                power += 1;
            }
            let suffix = ["", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei"][power];
            return write!(f, "{n}{suffix}");
        }
        // Decimal: the exponent is the largest multiple of three at or below the scale.
        let exponent = self.scale.div_euclid(3) * 3;
        let exponent = if self.format == Format::DecimalExponent {
            exponent
        } else {
            exponent.min(18)
        };
        let factor = 10_i128.pow(u32::try_from(self.scale - exponent).unwrap_or(0));
        let number = self.mantissa.saturating_mul(factor);
        let suffix = match (self.format, exponent) {
            (Format::DecimalExponent, 0) => String::new(),
            (Format::DecimalExponent, e) => format!("e{e}"),
            (_, e) => match e {
                -9 => "n",
                -6 => "u",
                -3 => "m",
                0 => "",
                3 => "k",
                6 => "M",
                9 => "G",
                12 => "T",
                15 => "P",
                _ => "E",
            }
            .to_string(),
        };
        write!(f, "{number}{suffix}")
    }
}

/// The canonical form of a quantity written as a JSON string or number, or `None` if it does not
/// parse.
pub fn canonical(value: &serde_json::Value) -> Option<String> {
    let text = match value {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Number(n) => n.to_string(),
        _ => return None,
    };
    Quantity::parse(&text).map(|q| q.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_forms_match_apimachinery() {
        // Cases from apimachinery's quantity_test.go (TestQuantityCanonicalize / TestQuantityParse
        // semantics), and the everyday ones operators write.
        for (input, want) in [
            ("0.5", "500m"),
            ("1.5", "1500m"),
            ("1000m", "1"),
            ("1", "1"),
            ("0", "0"),
            ("0Gi", "0"),
            ("1.5Gi", "1536Mi"),
            ("1024Mi", "1Gi"),
            ("0.5Gi", "512Mi"),
            ("0.5Ki", "512"),
            ("1Ki", "1Ki"),
            ("1023Ki", "1023Ki"),
            ("1025", "1025"),
            ("1500M", "1500M"),
            ("1000M", "1G"),
            ("1e3", "1e3"),
            ("1E6", "1e6"),
            ("1.5e3", "1500"),
            ("100m", "100m"),
            ("250m", "250m"),
            ("1.001", "1001m"),
            ("0.0000000001", "1n"),
            ("-0.5", "-500m"),
            ("+2", "2"),
            (".5", "500m"),
            ("5.", "5"),
            ("12Mi", "12Mi"),
            ("2G", "2G"),
            ("1k", "1k"),
            ("10k", "10k"),
            ("1000k", "1M"),
        ] {
            let q = Quantity::parse(input).unwrap_or_else(|| panic!("{input} did not parse"));
            assert_eq!(q.to_string(), want, "canonical form of {input}");
        }
    }

    #[test]
    fn malformed_quantities_are_refused() {
        for input in [
            "", "abc", "1.2.3", "1kb", "1GGi", "1e2.3", "Gi", ".", "1 Gi", "--1", "1e",
        ] {
            assert!(Quantity::parse(input).is_none(), "{input:?} parsed");
        }
    }

    #[test]
    fn numbers_are_quantities_too() {
        assert_eq!(canonical(&serde_json::json!(0.5)).as_deref(), Some("500m"));
        assert_eq!(canonical(&serde_json::json!(2)).as_deref(), Some("2"));
        assert_eq!(canonical(&serde_json::json!(true)), None);
    }

    #[test]
    fn values_compare_across_formats() {
        let q = |s| Quantity::parse(s).unwrap();
        assert_eq!(q("0.5").cmp_value(&q("500m")), std::cmp::Ordering::Equal);
        assert_eq!(q("1Gi").cmp_value(&q("1G")), std::cmp::Ordering::Greater);
        assert!(q("-1").is_negative());
        assert!(q("0m").is_zero());
    }
}
