//! Event timestamps: parsed from every format the Activity Log is seen to use, kept as UTC nanoseconds.

use std::fmt;

/// A UTC instant with nanosecond precision; ordering is the last-writer-wins order of facts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct EventTime(pub i64);

const NANOS_PER_SEC: i64 = 1_000_000_000;

impl EventTime {
    /// The earliest representable time, used when a record carries no usable timestamp.
    pub const UNKNOWN: EventTime = EventTime(0);

    /// Parses the timestamp shapes seen in real Activity Log data: ISO 8601 with 0–9
    /// fractional digits and `Z`, `±HH:MM` or no zone (taken as UTC), and the US form
    /// `M/D/YYYY h:mm:ss [AM|PM] [±HH:MM]`.
    pub fn parse(s: &str) -> Option<EventTime> {
        let s = s.trim();
        let b = s.as_bytes();
        if b.len() >= 10 && b[4] == b'-' {
            parse_iso(b)
        } else if b.contains(&b'/') {
            parse_us(s)
        } else {
            None
        }
    }

    /// Whole seconds since the Unix epoch.
    pub fn unix_seconds(self) -> i64 {
        self.0.div_euclid(NANOS_PER_SEC)
    }

    /// Builds a time from seconds since the Unix epoch.
    pub fn from_unix_seconds(secs: i64) -> EventTime {
        EventTime(secs.saturating_mul(NANOS_PER_SEC))
    }

    /// The current wall-clock time.
    pub fn now() -> EventTime {
        let d = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        EventTime(d.as_nanos() as i64)
    }

    /// This time shifted by a duration (negative allowed).
    pub fn add_nanos(self, nanos: i64) -> EventTime {
        EventTime(self.0.saturating_add(nanos))
    }
}

impl fmt::Display for EventTime {
    /// RFC 3339 in UTC with the fraction only when there is one, so text stays short.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let secs = self.0.div_euclid(NANOS_PER_SEC);
        let nanos = self.0.rem_euclid(NANOS_PER_SEC);
        let days = secs.div_euclid(86_400);
        let sod = secs.rem_euclid(86_400);
        let (y, m, d) = civil_from_days(days);
        write!(
            f,
            "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}",
            sod / 3600,
            (sod / 60) % 60,
            sod % 60
        )?;
        if nanos != 0 {
            let frac = format!("{nanos:09}");
            write!(f, ".{}", frac.trim_end_matches('0'))?;
        }
        f.write_str("Z")
    }
}

/// A run of ASCII digits as a number; `None` for anything else, including runs too long for
/// any date field (input is untrusted: `99999999999999999999/1/1` must not overflow).
fn digits(b: &[u8]) -> Option<i64> {
    if b.is_empty() || b.len() > MAX_DIGITS || !b.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(b.iter().fold(0i64, |a, d| a * 10 + i64::from(d - b'0')))
}

/// Longest digit run read as one field: nine covers nanoseconds and is far below i64 overflow.
const MAX_DIGITS: usize = 9;

/// Years a timestamp may name (RFC 3339's range) so the day arithmetic cannot overflow; the
/// nanosecond range of `EventTime` (1677–2262) is then enforced by checked arithmetic.
const YEARS: std::ops::RangeInclusive<i64> = 0..=9999;

fn parse_iso(b: &[u8]) -> Option<EventTime> {
    let year = digits(&b[0..4])?;
    let month = digits(b.get(5..7)?)?;
    let day = digits(b.get(8..10)?)?;
    if b.get(7) != Some(&b'-') {
        return None;
    }
    let (mut h, mut mi, mut s, mut nanos) = (0, 0, 0, 0);
    let mut rest: &[u8] = &b[10..];
    if let Some(&sep) = rest.first() {
        if sep != b'T' && sep != b't' && sep != b' ' {
            return None;
        }
        let t = &rest[1..];
        h = digits(t.get(0..2)?)?;
        if t.get(2) != Some(&b':') {
            return None;
        }
        mi = digits(t.get(3..5)?)?;
        rest = &t[5..];
        if rest.first() == Some(&b':') {
            s = digits(rest.get(1..3)?)?;
            rest = &rest[3..];
        }
        if rest.first() == Some(&b'.') || rest.first() == Some(&b',') {
            let end = rest[1..]
                .iter()
                .position(|c| !c.is_ascii_digit())
                .map_or(rest.len(), |p| p + 1);
            let frac = &rest[1..end];
            if frac.is_empty() {
                return None;
            }
            // Digits past nanoseconds are dropped, not rounded: ordering stays stable.
            let used = &frac[..frac.len().min(9)];
            nanos = digits(used)? * 10i64.pow(9 - used.len() as u32);
            rest = &rest[end..];
        }
    }
    let offset = parse_zone(rest)?;
    build([year, month, day, h, mi, s], nanos, offset)
}

/// `Z`, `±HH:MM`, `±HHMM` or nothing (UTC); returns the offset in seconds.
fn parse_zone(z: &[u8]) -> Option<i64> {
    let z = z.trim_ascii();
    match z {
        [] | [b'Z'] | [b'z'] => Some(0),
        [sign @ (b'+' | b'-'), rest @ ..] => {
            let (hh, mm) = match rest {
                [a, b, b':', c, d] | [a, b, c, d] => (digits(&[*a, *b])?, digits(&[*c, *d])?),
                [a, b] => (digits(&[*a, *b])?, 0),
                _ => return None,
            };
            let off = hh * 3600 + mm * 60;
            Some(if *sign == b'-' { -off } else { off })
        }
        _ => None,
    }
}

fn parse_us(s: &str) -> Option<EventTime> {
    let mut parts = s.split_ascii_whitespace();
    let date = parts.next()?;
    let time = parts.next().unwrap_or("00:00:00");
    let mut ampm = None;
    let mut zone = "";
    for p in parts {
        match p.to_ascii_uppercase().as_str() {
            "AM" => ampm = Some(false),
            "PM" => ampm = Some(true),
            _ => zone = p,
        }
    }
    let mut d = date.split('/');
    let month = digits(d.next()?.as_bytes())?;
    let day = digits(d.next()?.as_bytes())?;
    let year = digits(d.next()?.as_bytes())?;
    if d.next().is_some() {
        return None;
    }
    let mut t = time.split(':');
    let mut h = digits(t.next()?.as_bytes())?;
    let mi = digits(t.next()?.as_bytes())?;
    let s = t.next().map_or(Some(0), |x| digits(x.as_bytes()))?;
    match ampm {
        Some(true) if h < 12 => h += 12,
        Some(false) if h == 12 => h = 0,
        _ => {}
    }
    build(
        [year, month, day, h, mi, s],
        0,
        parse_zone(zone.as_bytes())?,
    )
}

/// The time of `[year, month, day, hour, minute, second]`, `nanos` and a zone `offset` (s).
fn build(ymdhms: [i64; 6], nanos: i64, offset: i64) -> Option<EventTime> {
    let [y, mo, d, h, mi, s] = ymdhms;
    if !YEARS.contains(&y)
        || !(1..=12).contains(&mo)
        || !(1..=31).contains(&d)
        || h > 23
        || mi > 59
        || s > 60
    {
        return None;
    }
    let days = days_from_civil(y, mo, d);
    let secs = days * 86_400 + h * 3600 + mi * 60 + s - offset;
    Some(EventTime(
        secs.checked_mul(NANOS_PER_SEC)?.checked_add(nanos)?,
    ))
}

// Howard Hinnant's civil-date algorithms: exact for the proleptic Gregorian calendar.
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

impl serde::Serialize for EventTime {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for EventTime {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        EventTime::parse(&s)
            .ok_or_else(|| serde::de::Error::custom(format!("{s:?} is not a timestamp")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_seen_format_to_the_same_instant() {
        let want = "2007-01-09T09:41:00Z";
        for (input, expect) in [
            ("01/09/2007 09:41:00", want),
            ("1/9/2007 09:41:00", want),
            ("01/09/2007 09:41:00 AM", want),
            ("1/9/2007 9:41:00 AM", want),
            ("1/9/2007 10:41:00 AM +01:00", want),
            ("2007-01-09T09:41:00", want),
            ("2007-01-09T09:41:00.22Z", "2007-01-09T09:41:00.22Z"),
            (
                "2007-01-09T09:41:00.6816663Z",
                "2007-01-09T09:41:00.6816663Z",
            ),
            (
                "2007-01-09T09:41:00.535404056Z",
                "2007-01-09T09:41:00.535404056Z",
            ),
            (
                "2007-01-09T09:41:00.992099+00:00",
                "2007-01-09T09:41:00.992099Z",
            ),
            ("2007-01-09T11:41:00+02:00", want),
            ("1/9/2007 9:41:00 PM", "2007-01-09T21:41:00Z"),
            ("12/31/2020 12:00:00 AM", "2020-12-31T00:00:00Z"),
        ] {
            let t = EventTime::parse(input).unwrap_or_else(|| panic!("{input} did not parse"));
            assert_eq!(t.to_string(), expect, "{input}");
        }
    }

    #[test]
    fn rejects_garbage() {
        for bad in [
            "",
            "yesterday",
            "2007-13-01T00:00:00Z",
            "2007-01-09T25:00:00Z",
            "1/2",
        ] {
            assert_eq!(EventTime::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn round_trips_through_display() {
        let t = EventTime::parse("2026-11-03T10:00:01.5Z").unwrap();
        assert_eq!(EventTime::parse(&t.to_string()), Some(t));
    }

    /// A small deterministic xorshift64: the fuzz cases are the same on every run.
    struct XorShift(u64);

    impl XorShift {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }

        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }
    }

    /// Parsing any input returns `Some` or `None`, never panics (overflow panics in debug
    /// builds); what parses prints and parses back to the same instant.
    fn assert_total(input: &str) {
        let parsed = std::panic::catch_unwind(|| EventTime::parse(input))
            .unwrap_or_else(|_| panic!("EventTime::parse panicked on {input:?}"));
        if let Some(t) = parsed {
            assert_eq!(EventTime::parse(&t.to_string()), Some(t), "{input:?}");
        }
    }

    #[test]
    fn long_digit_runs_do_not_overflow() {
        let forty = "9".repeat(40);
        for input in [
            format!("{forty}-01-01T00:00:00Z"),
            format!("9999-01-01T00:00:00.{forty}Z"),
            format!("2026-01-01T00:00:00.{forty}"),
            format!("1/1/{forty}"),
            format!("{forty}/1/2026 1:00:00 PM"),
            format!("1/{forty}/2026"),
            format!("1/1/2026 {forty}:00:00"),
            format!("1/1/2026 1:{forty}:00"),
            format!("1/1/2026 1:00:{forty}"),
            format!("1/1/2026 1:00:00 +{forty}"),
            "1/1/999999999 23:59:60 PM +99:99".to_string(),
            "1/1/9223372036854775807".to_string(),
            "9999-12-31T23:59:60.999999999-99:99".to_string(),
            "0000-01-01T00:00:00+99:99".to_string(),
        ] {
            assert_total(&input);
        }
        assert_eq!(EventTime::parse(&format!("1/1/{forty}")), None);
        assert_eq!(
            EventTime::parse(&format!("2026-01-01T00:00:00.{forty}Z")).map(|t| t.to_string()),
            Some("2026-01-01T00:00:00.999999999Z".to_string()),
            "fraction digits past nanoseconds are dropped, not an error"
        );
    }

    #[test]
    fn random_strings_never_panic() {
        const ALPHABET: &[u8] = b"0123456789-/:T.Z+ APMaptz,";
        let mut rng = XorShift(0x9E37_79B9_7F4A_7C15);
        // Start from real shapes and mutate them, so that many inputs get deep into the parser.
        let seeds = [
            "2007-01-09T09:41:00.6816663Z",
            "2007-01-09T11:41:00+02:00",
            "1/9/2007 10:41:00 AM +01:00",
        ];
        for i in 0..100_000 {
            let mut s: Vec<u8> = if i % 2 == 0 {
                seeds[rng.below(seeds.len())].as_bytes().to_vec()
            } else {
                Vec::new()
            };
            for _ in 0..rng.below(12) {
                let c = ALPHABET[rng.below(ALPHABET.len())];
                match rng.below(3) {
                    0 if !s.is_empty() => {
                        let at = rng.below(s.len());
                        s[at] = c;
                    }
                    1 => {
                        // A run of digits, up to 30 long.
                        let at = rng.below(s.len() + 1);
                        for _ in 0..rng.below(30) {
                            s.insert(at, b'0' + rng.below(10) as u8);
                        }
                    }
                    _ => {
                        let at = rng.below(s.len() + 1);
                        s.insert(at, c);
                    }
                }
            }
            assert_total(std::str::from_utf8(&s).unwrap());
        }
    }
}
