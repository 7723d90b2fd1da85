//! Resource quantities (`500m`, `1.5Gi`, `2e3`) parsed, compared and printed as Kubernetes does
//! (apimachinery `pkg/api/resource/quantity.go`).
//!
//! A [`Quantity`] holds its value exactly, in nano units, as an `i128` (so magnitudes up to about
//! 1.7e29; larger values do not parse), plus the [`Format`] it was written in, which decides how
//! it prints. Like upstream, values finer than `1n` are rounded up (away from zero) to `1n`.

use std::cmp::Ordering;
use std::fmt;
use std::str::FromStr;

/// A quantity that does not parse.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'")]
pub struct QuantityError;

/// How a quantity is written, and therefore printed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Format {
    /// `Ki`, `Mi`, ... `Ei` (powers of 1024).
    BinarySI,
    /// `n`, `u`, `m`, ``, `k`, `M`, `G`, `T`, `P`, `E` (powers of 1000).
    DecimalSI,
    /// `1e3`, `12E-3`.
    DecimalExponent,
}

const NANO: i128 = 1_000_000_000;

/// A Kubernetes resource quantity. Equality and ordering compare values only (`1Ki == 1024`).
#[derive(Clone, Copy, Debug)]
pub struct Quantity {
    nanos: i128,
    format: Format,
}

impl PartialEq for Quantity {
    fn eq(&self, other: &Self) -> bool {
        self.nanos == other.nanos
    }
}

impl Eq for Quantity {}

impl PartialOrd for Quantity {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Quantity {
    fn cmp(&self, other: &Self) -> Ordering {
        self.nanos.cmp(&other.nanos)
    }
}

impl std::hash::Hash for Quantity {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.nanos.hash(state)
    }
}

/// `10^n` for small `n`, or `None` when it overflows.
fn pow10(n: u32) -> Option<i128> {
    10i128.checked_pow(n)
}

/// `a / b` rounded away from zero (b > 0).
fn div_away(a: i128, b: i128) -> i128 {
    let q = a / b;
    if a % b == 0 {
        q
    } else if a < 0 {
        q - 1
    } else {
        q + 1
    }
}

impl Quantity {
    /// Parses a quantity string, e.g. `100m`, `1.5Gi`, `2e3`, `+4k`.
    pub fn parse(s: &str) -> Result<Quantity, QuantityError> {
        let s = s.trim();
        if s.is_empty() {
            return Err(QuantityError);
        }
        let bytes = s.as_bytes();
        let mut pos = 0;
        let mut positive = true;
        match bytes[0] {
            b'-' => {
                positive = false;
                pos += 1;
            }
            b'+' => pos += 1,
            _ => {}
        }
        let num_start = pos;
        while pos < bytes.len() && bytes[pos].is_ascii_digit() {
            pos += 1;
        }
        let num = &s[num_start..pos];
        let mut denom = "";
        if pos < bytes.len() && bytes[pos] == b'.' {
            pos += 1;
            let d_start = pos;
            while pos < bytes.len() && bytes[pos].is_ascii_digit() {
                pos += 1;
            }
            denom = &s[d_start..pos];
        }
        if pos == num_start {
            // Neither digits nor '.': e.g. "Ki" or "-".
            return Err(QuantityError);
        }
        let suffix = &s[pos..];
        // The suffix: letters from the set, then an optional sign and digits.
        let mut i = 0;
        let sb = suffix.as_bytes();
        while i < sb.len() && b"eEinumkKMGTP".contains(&sb[i]) {
            i += 1;
        }
        if i < sb.len() && (sb[i] == b'-' || sb[i] == b'+') {
            i += 1;
        }
        while i < sb.len() && sb[i].is_ascii_digit() {
            i += 1;
        }
        if i != sb.len() {
            return Err(QuantityError);
        }
        let (base, exponent, format) = interpret_suffix(suffix).ok_or(QuantityError)?;

        // digits = num ++ denom (trailing zeros of denom dropped), value = digits * 10^-scale.
        let denom = denom.trim_end_matches('0');
        let digits = format!("{num}{denom}");
        let digits = digits.trim_start_matches('0');
        let mantissa: i128 = if digits.is_empty() { 0 } else { digits.parse().map_err(|_| QuantityError)? };
        let scale = denom.len() as i64;
        let nanos = if mantissa == 0 {
            0
        } else if base == 10 {
            let shift = 9 - scale + exponent as i64;
            if shift >= 0 {
                let f = pow10(u32::try_from(shift).map_err(|_| QuantityError)?).ok_or(QuantityError)?;
                mantissa.checked_mul(f).ok_or(QuantityError)?
            } else {
                match u32::try_from(-shift).ok().and_then(pow10) {
                    Some(f) => div_away(mantissa, f),
                    // Smaller than any representable nano amount: rounds up to 1n.
                    None => 1,
                }
            }
        } else {
            let pow2 = 1i128.checked_shl(exponent as u32).ok_or(QuantityError)?;
            let whole = mantissa.checked_mul(pow2).and_then(|v| v.checked_mul(NANO)).ok_or(QuantityError)?;
            let f = u32::try_from(scale).ok().and_then(pow10).ok_or(QuantityError)?;
            div_away(whole, f)
        };
        let mut format = format;
        if format == Format::BinarySI && nanos > 0 && nanos < NANO {
            format = Format::DecimalSI;
        }
        Ok(Quantity { nanos: if positive { nanos } else { -nanos }, format })
    }

    /// A quantity of `n` whole units (`n` bytes, `n` cores, `n` pods).
    pub fn from_value(n: i64, format: Format) -> Quantity {
        Quantity { nanos: n as i128 * NANO, format }
    }

    /// A quantity of `m` thousandths (`500` -> `500m`).
    pub fn from_millis(m: i64) -> Quantity {
        Quantity { nanos: m as i128 * 1_000_000, format: Format::DecimalSI }
    }

    /// The value in nano units, exact.
    pub fn as_nanos(&self) -> i128 {
        self.nanos
    }

    /// The value in thousandths, rounded up (away from zero) as upstream's `MilliValue`:
    /// CPU millicores.
    pub fn as_millis(&self) -> i128 {
        div_away(self.nanos, 1_000_000)
    }

    /// The value in whole units, rounded up (away from zero) as upstream's `Value`: bytes of
    /// memory or storage, counts.
    pub fn value(&self) -> i128 {
        div_away(self.nanos, NANO)
    }

    /// Same as [`Quantity::value`], for memory and storage.
    pub fn as_bytes(&self) -> i128 {
        self.value()
    }

    /// The value as a float (for ratios such as utilization).
    pub fn as_f64(&self) -> f64 {
        self.nanos as f64 / NANO as f64
    }

    /// The format the quantity was written in.
    pub fn format(&self) -> Format {
        self.format
    }

    pub fn is_zero(&self) -> bool {
        self.nanos == 0
    }

    /// `self + other` in `self`'s format, or `None` on overflow.
    pub fn checked_add(&self, other: &Quantity) -> Option<Quantity> {
        Some(Quantity { nanos: self.nanos.checked_add(other.nanos)?, format: self.format })
    }

    /// `self - other` in `self`'s format, or `None` on overflow.
    pub fn checked_sub(&self, other: &Quantity) -> Option<Quantity> {
        Some(Quantity { nanos: self.nanos.checked_sub(other.nanos)?, format: self.format })
    }

    /// The canonical string, as upstream's `String()`: `1536Mi`, `500m`, `1k`, `1e3`.
    pub fn canonical(&self) -> String {
        if self.nanos == 0 {
            return "0".to_string();
        }
        let mut format = self.format;
        if format == Format::BinarySI && (self.nanos.abs() < 1024 * NANO || self.nanos % NANO != 0) {
            format = Format::DecimalSI;
        }
        match format {
            Format::BinarySI => {
                let mut amount = self.nanos / NANO;
                let mut exp = 0;
                while exp < 6 && amount.abs() >= 1024 && amount % 1024 == 0 {
                    amount /= 1024;
                    exp += 1;
                }
                let suffix = ["", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei"][exp];
                format!("{amount}{suffix}")
            }
            Format::DecimalSI | Format::DecimalExponent => {
                let mut amount = self.nanos;
                let mut exp: i32 = -9;
                while amount.abs() >= 10 && amount % 10 == 0 {
                    amount /= 10;
                    exp += 1;
                }
                let extra = exp.rem_euclid(3);
                exp -= extra;
                amount *= 10i128.pow(extra as u32);
                if format == Format::DecimalExponent {
                    return if exp == 0 { format!("{amount}") } else { format!("{amount}e{exp}") };
                }
                if exp > 18 {
                    amount *= 10i128.pow((exp - 18) as u32);
                    exp = 18;
                }
                let suffix = match exp {
                    -9 => "n",
                    -6 => "u",
                    -3 => "m",
                    3 => "k",
                    6 => "M",
                    9 => "G",
                    12 => "T",
                    15 => "P",
                    18 => "E",
                    _ => "",
                };
                format!("{amount}{suffix}")
            }
        }
    }
}

/// The base, exponent and format a suffix stands for.
fn interpret_suffix(suffix: &str) -> Option<(u32, i32, Format)> {
    let dec = |e| Some((10, e, Format::DecimalSI));
    let bin = |e| Some((2, e, Format::BinarySI));
    match suffix {
        "" => dec(0),
        "n" => dec(-9),
        "u" => dec(-6),
        "m" => dec(-3),
        "k" => dec(3),
        "M" => dec(6),
        "G" => dec(9),
        "T" => dec(12),
        "P" => dec(15),
        "E" => dec(18),
        "Ki" => bin(10),
        "Mi" => bin(20),
        "Gi" => bin(30),
        "Ti" => bin(40),
        "Pi" => bin(50),
        "Ei" => bin(60),
        s if s.len() > 1 && (s.starts_with('e') || s.starts_with('E')) => {
            let e: i32 = s[1..].parse().ok()?;
            Some((10, e, Format::DecimalExponent))
        }
        _ => None,
    }
}

impl FromStr for Quantity {
    type Err = QuantityError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Quantity::parse(s)
    }
}

impl fmt::Display for Quantity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.canonical())
    }
}

impl serde::Serialize for Quantity {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.canonical())
    }
}

impl<'de> serde::Deserialize<'de> for Quantity {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // Upstream accepts both `"1Gi"` and a bare JSON number.
        match serde_json::Value::deserialize(d)? {
            serde_json::Value::String(s) => Quantity::parse(&s).map_err(serde::de::Error::custom),
            serde_json::Value::Number(n) => Quantity::parse(&n.to_string()).map_err(serde::de::Error::custom),
            other => Err(serde::de::Error::custom(format!("invalid quantity {other}"))),
        }
    }
}

impl TryFrom<&k8s_openapi::apimachinery::pkg::api::resource::Quantity> for Quantity {
    type Error = QuantityError;

    fn try_from(q: &k8s_openapi::apimachinery::pkg::api::resource::Quantity) -> Result<Self, Self::Error> {
        Quantity::parse(&q.0)
    }
}

impl From<Quantity> for k8s_openapi::apimachinery::pkg::api::resource::Quantity {
    fn from(q: Quantity) -> Self {
        k8s_openapi::apimachinery::pkg::api::resource::Quantity(q.canonical())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(s: &str) -> Quantity {
        Quantity::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn canonical_forms_match_upstream() {
        let cases = [
            ("0", "0"),
            ("0m", "0"),
            ("-0", "0"),
            ("1", "1"),
            ("1000", "1k"),
            ("1000m", "1"),
            ("500m", "500m"),
            ("0.5", "500m"),
            ("1.5", "1500m"),
            ("0.1", "100m"),
            ("100Mi", "100Mi"),
            ("1024Ki", "1Mi"),
            ("1.5Gi", "1536Mi"),
            ("0.5Gi", "512Mi"),
            ("1Ki", "1Ki"),
            ("512Ki", "512Ki"),
            ("0.5Ki", "512"),
            ("1023", "1023"),
            ("1e3", "1e3"),
            ("1.5e3", "1500"),
            ("1E3", "1e3"),
            ("12e-3", "12e-3"),
            ("1M", "1M"),
            ("1G", "1G"),
            ("2T", "2T"),
            ("1E", "1E"),
            ("+5", "5"),
            ("-5", "-5"),
            ("-1Ki", "-1Ki"),
            ("-1.5", "-1500m"),
            ("10u", "10u"),
            ("1n", "1n"),
            ("0.0000000001", "1n"),
            ("1.", "1"),
            (".5", "500m"),
            ("007", "7"),
        ];
        for (input, want) in cases {
            assert_eq!(q(input).canonical(), want, "{input}");
        }
    }

    #[test]
    fn malformed_quantities_are_rejected() {
        for bad in ["", "abc", "1Z", "Ki", "1.5.5", "1Gi1", "1e", "--1", "1 Gi", "1KiB", "e3", "1e3.5"] {
            assert_eq!(Quantity::parse(bad), Err(QuantityError), "{bad:?}");
        }
    }

    #[test]
    fn accessors_round_up_like_upstream() {
        assert_eq!(q("1").as_millis(), 1000);
        assert_eq!(q("250m").as_millis(), 250);
        assert_eq!(q("1n").as_millis(), 1);
        assert_eq!(q("1.5Gi").as_bytes(), 1_610_612_736);
        assert_eq!(q("1Ei").as_bytes(), 1 << 60);
        assert_eq!(q("100m").value(), 1);
        assert_eq!(q("1k").value(), 1000);
        assert_eq!(q("-100m").value(), -1);
        assert_eq!(q("2e3").value(), 2000);
        assert_eq!(q("1u").as_nanos(), 1000);
    }

    #[test]
    fn comparison_is_by_value() {
        assert_eq!(q("1Ki"), q("1024"));
        assert_eq!(q("1"), q("1000m"));
        assert!(q("500m") < q("1"));
        assert!(q("1Gi") > q("1G"));
        assert!(q("-1") < q("0"));
    }

    #[test]
    fn arithmetic_keeps_the_left_format() {
        let sum = q("1Gi").checked_add(&q("512Mi")).map(|s| s.canonical());
        assert_eq!(sum.as_deref(), Some("1536Mi"));
        assert_eq!(q("1").checked_sub(&q("250m")).map(|s| s.canonical()).as_deref(), Some("750m"));
    }

    #[test]
    fn serde_round_trips_strings_and_numbers() {
        let parsed: Quantity = serde_json::from_str("\"1.5Gi\"").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(serde_json::to_string(&parsed).ok().as_deref(), Some("\"1536Mi\""));
        let n: Quantity = serde_json::from_str("2").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(n, q("2"));
        assert!(serde_json::from_str::<Quantity>("\"x\"").is_err());
    }

    #[test]
    fn huge_values_are_rejected_not_wrapped() {
        assert_eq!(Quantity::parse("1e40"), Err(QuantityError));
        assert!(Quantity::parse("1e20").is_ok());
    }

    proptest::proptest! {
        #[test]
        fn canonical_string_parses_back_to_the_same_value(n in -1_000_000_000_000i64..1_000_000_000_000i64, suffix in 0usize..8) {
            let s = format!("{n}{}", ["", "m", "k", "Ki", "Mi", "u", "G", "e2"][suffix]);
            let a = q(&s);
            let b = q(&a.canonical());
            proptest::prop_assert_eq!(a, b);
            proptest::prop_assert_eq!(b.canonical(), a.canonical());
        }
    }
}
