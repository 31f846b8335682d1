//! Azure Activity Log source: prefilter, decode and map records to observations.

pub(crate) mod fields;
pub mod map;
pub(crate) mod prefilter;
pub(crate) mod record;

pub use prefilter::{AzureOp, Prefilter, Verdict};

use crate::sources::{Decoded, SkipReason};

/// Decodes one Activity Log record, skipping irrelevant ones before any JSON parse.
/// The caller fills in the observation's location.
pub fn decode_record(prefilter: &Prefilter, rec: &[u8]) -> Decoded {
    match prefilter.classify(rec) {
        Verdict::Irrelevant => Decoded::Skipped(SkipReason::IrrelevantOperation),
        v => record::decode(rec, v),
    }
}
