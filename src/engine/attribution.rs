//! Which Kubernetes change an audit record describes (and the other way round): exact by
//! resourceVersion when both sides carry one, else the nearest in time within the window.
//! Pure: the pipeline reads the candidates from the store and applies the pick.

use crate::domain::EventTime;

/// One side of a possible join.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Side<'a> {
    /// A delete (only a delete matches a delete).
    pub is_delete: bool,
    /// `resourceVersion`, when this side knows it.
    pub resource_version: Option<&'a str>,
    /// Event time: when the API server completed the request, or when the watch saw it.
    pub time: EventTime,
}

/// How a join was made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum How {
    /// The audit event's response object has the resourceVersion the watch saw.
    ResourceVersion,
    /// The nearest time within the window.
    Time,
}

impl How {
    /// Stable name (metrics label).
    pub fn as_str(self) -> &'static str {
        match self {
            How::ResourceVersion => "resource_version",
            How::Time => "time",
        }
    }
}

/// The candidate `one` joins, by index. Two changes of one object in the window are told
/// apart by resourceVersion when both carry one (a different one never joins); else by time,
/// the nearest first and, at equal distance, the earlier (candidates are in time order), so
/// two quick changes take their two records in order.
pub fn pick(one: &Side<'_>, candidates: &[Side<'_>], window_nanos: i64) -> Option<(usize, How)> {
    let mut best: Option<(usize, i64)> = None;
    for (i, c) in candidates.iter().enumerate() {
        if c.is_delete != one.is_delete {
            continue;
        }
        if let (Some(a), Some(b)) = (one.resource_version, c.resource_version) {
            if a == b {
                return Some((i, How::ResourceVersion));
            }
            continue;
        }
        let d = (c.time.0 - one.time.0).saturating_abs();
        if d > window_nanos {
            continue;
        }
        if best.is_none_or(|(_, bd)| d < bd) {
            best = Some((i, d));
        }
    }
    best.map(|(i, _)| (i, How::Time))
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: i64 = 1_000_000_000;

    fn side(is_delete: bool, rv: Option<&str>, secs: i64) -> Side<'_> {
        Side {
            is_delete,
            resource_version: rv,
            time: EventTime(secs * S),
        }
    }

    #[test]
    fn pick_table() {
        let w = 600 * S;
        for (name, one, cands, want) in [
            (
                "resource version wins over a nearer time",
                side(false, Some("7"), 100),
                vec![side(false, Some("6"), 100), side(false, Some("7"), 400)],
                Some((1, How::ResourceVersion)),
            ),
            (
                "a different resource version never joins",
                side(false, Some("7"), 100),
                vec![side(false, Some("6"), 100)],
                None,
            ),
            (
                "nearest in time without resource versions",
                side(false, None, 100),
                vec![side(false, None, 10), side(false, None, 102)],
                Some((1, How::Time)),
            ),
            (
                "equal distance: the earlier",
                side(false, None, 100),
                vec![side(false, None, 98), side(false, None, 102)],
                Some((0, How::Time)),
            ),
            (
                "one side without resource version: by time",
                side(false, Some("9"), 100),
                vec![side(false, None, 101)],
                Some((0, How::Time)),
            ),
            (
                "outside the window",
                side(false, None, 100),
                vec![side(false, None, 100 + 601)],
                None,
            ),
            (
                "a delete matches only a delete",
                side(true, None, 100),
                vec![side(false, None, 100), side(true, None, 130)],
                Some((1, How::Time)),
            ),
            ("nothing to join", side(false, None, 1), vec![], None),
        ] {
            assert_eq!(pick(&one, &cands, w), want, "{name}");
        }
    }
}
