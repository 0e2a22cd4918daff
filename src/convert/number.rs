//! Exact DynamoDB numbers.
//!
//! DynamoDB numbers are decimal text with up to 38 significant digits and exponents from -130 to
//! +125. We never go through `f64`: `Decimal` parses the text into sign, significant digits and
//! a power of ten, and decides which exact Arrow representation can hold it (Int64, Decimal128
//! at a scale, or the original text). Formatting back produces DynamoDB's canonical form (plain
//! digits, no exponent, no trailing fractional zeros), which is what DynamoDB itself returns.

use serde::{Deserialize, Serialize};

/// Largest precision of Arrow/Parquet `Decimal128`.
pub const MAX_DECIMAL_PRECISION: u32 = 38;

/// The order of a number by value (see [`Decimal::order_key`]).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct NumberOrder(i8, i64, Vec<u8>);

/// A parsed decimal number: `(-1)^negative × digits × 10^exponent`, digits without leading or
/// trailing zeros (empty for zero).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Decimal<'a> {
    pub(crate) negative: bool,
    /// Significant digits, ASCII, possibly split around a decimal point in the source text.
    parts: (&'a str, &'a str),
    /// Number of leading digits to skip in `parts`, trailing digits to drop.
    skip: usize,
    len: usize,
    pub(crate) exponent: i64,
}

impl<'a> Decimal<'a> {
    /// Parse DynamoDB number text (`-12.50`, `1E+38`, `.5`). Returns `None` on anything that is
    /// not a decimal number.
    pub(crate) fn parse(text: &'a str) -> Option<Self> {
        let s = text.trim();
        let (negative, s) = match s.as_bytes().first()? {
            b'-' => (true, &s[1..]),
            b'+' => (false, &s[1..]),
            _ => (false, s),
        };
        // Byte searches: `str::find` with a char pattern costs a call per match attempt.
        let (mantissa, exp) = match s.bytes().position(|b| b | 0x20 == b'e') {
            Some(i) => (&s[..i], s[i + 1..].parse::<i64>().ok()?),
            None => (s, 0),
        };
        let (int_part, frac_part) = match mantissa.bytes().position(|b| b == b'.') {
            Some(i) => (&mantissa[..i], &mantissa[i + 1..]),
            None => (mantissa, ""),
        };
        if int_part.is_empty() && frac_part.is_empty() {
            return None;
        }
        if !int_part.bytes().all(|b| b.is_ascii_digit())
            || !frac_part.bytes().all(|b| b.is_ascii_digit())
        {
            return None;
        }
        let total = int_part.len() + frac_part.len();
        let digit = |i: usize| -> u8 {
            if i < int_part.len() {
                int_part.as_bytes()[i]
            } else {
                frac_part.as_bytes()[i - int_part.len()]
            }
        };
        let skip = (0..total).find(|&i| digit(i) != b'0').unwrap_or(total);
        let end = (skip..total)
            .rev()
            .find(|&i| digit(i) != b'0')
            .map_or(skip, |i| i + 1);
        let len = end - skip;
        // value = digits[skip..end] × 10^(exp - frac_len + trailing zeros dropped)
        let exponent = exp - frac_part.len() as i64 + (total - end) as i64;
        Some(Decimal {
            negative: negative && len > 0,
            parts: (int_part, frac_part),
            skip,
            len,
            exponent: if len == 0 { 0 } else { exponent },
        })
    }

    fn digit(&self, i: usize) -> u8 {
        let i = i + self.skip;
        let (a, b) = self.parts;
        if i < a.len() {
            a.as_bytes()[i]
        } else {
            b.as_bytes()[i - a.len()]
        }
    }

    /// Digits after the decimal point needed to write this number exactly (0 for integers).
    pub(crate) fn scale(&self) -> u32 {
        if self.exponent >= 0 {
            0
        } else {
            u32::try_from(-self.exponent).unwrap_or(u32::MAX)
        }
    }

    /// Digits before the decimal point (0 for |x| < 1).
    pub(crate) fn integer_digits(&self) -> u32 {
        let n = self.len as i64 + self.exponent;
        u32::try_from(n.max(0)).unwrap_or(u32::MAX)
    }

    /// The unscaled value at `scale` (`self × 10^scale`), if it fits in an i128 and is exact.
    pub(crate) fn unscaled(&self, scale: u32) -> Option<i128> {
        let shift = self.exponent + scale as i64;
        if shift < 0 {
            return None; // would need more fractional digits than `scale`
        }
        let mut v: i128 = 0;
        for i in 0..self.len {
            v = v
                .checked_mul(10)?
                .checked_add((self.digit(i) - b'0') as i128)?;
        }
        for _ in 0..shift {
            v = v.checked_mul(10)?;
        }
        Some(if self.negative { -v } else { v })
    }

    /// The value as an i64 if it is an integer that fits.
    pub(crate) fn to_i64(&self) -> Option<i64> {
        if self.exponent < 0 || self.integer_digits() > 19 {
            return None;
        }
        i64::try_from(self.unscaled(0)?).ok()
    }

    /// A key that orders numbers by value: compare two keys to compare the numbers.
    pub(crate) fn order_key(&self) -> NumberOrder {
        if self.len == 0 {
            return NumberOrder(0, 0, Vec::new());
        }
        // |x| = 0.d1d2… × 10^magnitude: a larger magnitude is a larger |x|, then the digits.
        let magnitude = self.len as i64 + self.exponent;
        let digits: Vec<u8> = (0..self.len).map(|i| self.digit(i)).collect();
        if self.negative {
            // Larger |x| is smaller: invert both parts.
            let inverted = digits
                .iter()
                .map(|d| b'9' - (d - b'0'))
                .chain([b'9' + 1])
                .collect();
            NumberOrder(-1, -magnitude, inverted)
        } else {
            NumberOrder(1, magnitude, digits)
        }
    }

    /// DynamoDB's canonical text for this number.
    pub(crate) fn canonical(&self) -> String {
        if self.len == 0 {
            return "0".to_owned();
        }
        let digits: String = (0..self.len).map(|i| self.digit(i) as char).collect();
        let mut out = String::with_capacity(self.len + 4);
        if self.negative {
            out.push('-');
        }
        if self.exponent >= 0 {
            out.push_str(&digits);
            out.extend(std::iter::repeat_n('0', self.exponent as usize));
        } else {
            let frac = (-self.exponent) as usize;
            if frac >= self.len {
                out.push_str("0.");
                out.extend(std::iter::repeat_n('0', frac - self.len));
                out.push_str(&digits);
            } else {
                out.push_str(&digits[..self.len - frac]);
                out.push('.');
                out.push_str(&digits[self.len - frac..]);
            }
        }
        out
    }
}

/// Canonical DynamoDB text of a Decimal128 value at a scale.
pub(crate) fn format_decimal(unscaled: i128, scale: u32) -> String {
    let negative = unscaled < 0;
    let mut digits = unscaled.unsigned_abs().to_string();
    let scale = scale as usize;
    if scale > 0 {
        if digits.len() <= scale {
            let pad = scale + 1 - digits.len();
            digits.insert_str(0, &"0".repeat(pad));
        }
        digits.insert(digits.len() - scale, '.');
        let trimmed = digits.trim_end_matches('0').trim_end_matches('.').len();
        digits.truncate(trimmed);
    }
    if negative && digits != "0" {
        digits.insert(0, '-');
    }
    digits
}

/// How a number column is stored, decided from every value seen (see [`NumberStats`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "as", rename_all = "snake_case")]
pub enum NumberRepr {
    /// Every value is an integer that fits in i64.
    Int64,
    /// Every value fits Decimal128(38, scale).
    Decimal {
        /// Digits after the decimal point.
        scale: u8,
    },
    /// Exact canonical number text (values beyond 38 digits at one scale).
    Text,
    /// Lossy 64-bit float, only with `--numbers float64`.
    Float64,
}

/// How numbers are mapped: exactly (default) or as lossy floats (opt-in).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[derive(clap::ValueEnum)]
pub enum NumberMode {
    /// Int64, Decimal128(38, s) or exact text, whichever holds every value exactly.
    #[default]
    Exact,
    /// Float64 for every number (loses digits beyond ~15-17 significant digits).
    Float64,
}

/// What has been seen of one number column, enough to pick its [`NumberRepr`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct NumberStats {
    all_i64: bool,
    max_scale: u32,
    max_integer_digits: u32,
    invalid: bool,
}

impl Default for NumberStats {
    fn default() -> Self {
        NumberStats {
            all_i64: true,
            max_scale: 0,
            max_integer_digits: 0,
            invalid: false,
        }
    }
}

impl NumberStats {
    /// Statistics that every number stored as `repr` could have had: what a schema recorded
    /// without its statistics is widened from. (A decimal's integer digits are not recorded,
    /// so they are taken as all its precision leaves.)
    pub(crate) fn covering(repr: NumberRepr) -> Self {
        let mut stats = NumberStats::default();
        match repr {
            NumberRepr::Int64 => stats.max_integer_digits = 19,
            NumberRepr::Decimal { scale } => {
                stats.all_i64 = false;
                stats.max_scale = u32::from(scale);
                stats.max_integer_digits = MAX_DECIMAL_PRECISION.saturating_sub(stats.max_scale);
            }
            NumberRepr::Text => stats.invalid = true,
            NumberRepr::Float64 => {}
        }
        stats
    }

    /// Account for one number value.
    pub(crate) fn observe(&mut self, text: &str) {
        if self.invalid {
            return;
        }
        if self.all_i64 && text.parse::<i64>().is_ok() {
            let d = text.trim_start_matches('-').trim_start_matches('0').len() as u32;
            self.max_integer_digits = self.max_integer_digits.max(d);
            return;
        }
        match Decimal::parse(text) {
            Some(d) => {
                if self.all_i64 && d.to_i64().is_none() {
                    self.all_i64 = false;
                }
                self.max_scale = self.max_scale.max(d.scale());
                self.max_integer_digits = self.max_integer_digits.max(d.integer_digits());
            }
            None => self.invalid = true,
        }
    }

    /// Also account for every value `other` has seen (as if they were observed here).
    pub(crate) fn merge(&mut self, other: &NumberStats) {
        self.all_i64 &= other.all_i64;
        self.max_scale = self.max_scale.max(other.max_scale);
        self.max_integer_digits = self.max_integer_digits.max(other.max_integer_digits);
        self.invalid |= other.invalid;
    }

    /// The exact representation that holds every value observed so far.
    pub(crate) fn repr(&self, mode: NumberMode) -> NumberRepr {
        if mode == NumberMode::Float64 {
            return NumberRepr::Float64;
        }
        if self.invalid {
            NumberRepr::Text
        } else if self.all_i64 {
            NumberRepr::Int64
        } else if self.max_scale.saturating_add(self.max_integer_digits) <= MAX_DECIMAL_PRECISION {
            NumberRepr::Decimal {
                scale: self.max_scale as u8,
            }
        } else {
            NumberRepr::Text
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_order_by_value() {
        let texts = [
            "-1E+10", "-123.5", "-123.45", "-2", "-0.5", "-0.05", "0", "0.05", "0.5", "1", "1.5",
            "2", "10", "123.45", "123.5", "1E+10",
        ];
        let keys: Vec<NumberOrder> = texts
            .iter()
            .map(|t| Decimal::parse(t).unwrap().order_key())
            .collect();
        for pair in keys.windows(2) {
            assert!(pair[0] < pair[1], "{pair:?}");
        }
        assert_eq!(
            Decimal::parse("1.50").unwrap().order_key(),
            Decimal::parse("15E-1").unwrap().order_key()
        );
    }

    #[test]
    fn parse_and_canonicalize() {
        let cases = [
            ("0", "0", 0, 0),
            ("-0", "0", 0, 0),
            ("000.000", "0", 0, 0),
            ("1.50", "1.5", 1, 1),
            ("-12.5e1", "-125", 0, 3),
            ("1E+38", "100000000000000000000000000000000000000", 0, 39),
            ("1E-130", &format!("0.{}1", "0".repeat(129)), 130, 0),
            (".5", "0.5", 1, 0),
            ("12345678901234567890123", "12345678901234567890123", 0, 23),
            ("0.000123", "0.000123", 6, 0),
            ("100", "100", 0, 3),
        ];
        for (text, canonical, scale, int_digits) in cases {
            let d = Decimal::parse(text).unwrap();
            assert_eq!(d.canonical(), canonical, "{text}");
            assert_eq!(d.scale(), scale, "{text}");
            assert_eq!(d.integer_digits(), int_digits, "{text}");
        }
        for bad in ["", "-", ".", "1e", "abc", "1.2.3", "NaN", "1e+x"] {
            assert!(Decimal::parse(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn unscaled_and_format_round_trip() {
        for (text, scale) in [
            ("1.5", 3),
            ("-0.001", 3),
            ("99999999999999999999999999999999999999", 0),
            ("0.5", 1),
            ("-7", 2),
        ] {
            let d = Decimal::parse(text).unwrap();
            let v = d.unscaled(scale).unwrap();
            assert_eq!(format_decimal(v, scale), d.canonical(), "{text}");
        }
        assert!(Decimal::parse("1.25").unwrap().unscaled(1).is_none());
        assert!(Decimal::parse("1E+39").unwrap().unscaled(0).is_none());
    }

    #[test]
    fn repr_choice() {
        let repr = |vals: &[&str]| {
            let mut s = NumberStats::default();
            vals.iter().for_each(|v| s.observe(v));
            s.repr(NumberMode::Exact)
        };
        assert_eq!(repr(&[]), NumberRepr::Int64);
        assert_eq!(repr(&["1", "-9223372036854775808"]), NumberRepr::Int64);
        assert_eq!(
            repr(&["9223372036854775808"]),
            NumberRepr::Decimal { scale: 0 }
        );
        assert_eq!(repr(&["1", "2.25"]), NumberRepr::Decimal { scale: 2 });
        assert_eq!(
            repr(&["12345678901234567890123456789012345678"]),
            NumberRepr::Decimal { scale: 0 }
        );
        // 38 integer digits and one fractional digit do not fit one scale.
        assert_eq!(
            repr(&["12345678901234567890123456789012345678", "0.5"]),
            NumberRepr::Text
        );
        assert_eq!(repr(&["1E+38"]), NumberRepr::Text);
        assert_eq!(repr(&["1E-130"]), NumberRepr::Text);
        assert_eq!(repr(&["not a number"]), NumberRepr::Text);
    }
}
