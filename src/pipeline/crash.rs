//! A deliberate crash for the crash-consistency tests (tests/crash.rs):
//! `ACCESSDRIFT_TEST_CRASH_AT=BATCH:STAGE` aborts the process (no destructors, no commit) at
//! that stage of that batch (1-based).
//!
//! Compiled in only for debug builds (what `cargo test` runs) or with the `test-crash`
//! feature (to run the crash tests against an optimised build). A release binary has no
//! hook: there, [`CrashPoint::from_env`] ignores the variable and `check` does nothing.

/// Where to crash; `None` everywhere in a release build.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct CrashPoint {
    #[cfg(any(debug_assertions, feature = "test-crash"))]
    batch: u64,
    #[cfg(any(debug_assertions, feature = "test-crash"))]
    stage: String,
}

#[cfg(any(debug_assertions, feature = "test-crash"))]
impl CrashPoint {
    /// Aborts when `this` names this batch and stage.
    pub(super) fn check(this: &Option<CrashPoint>, batch: u64, stage: &str) {
        if let Some(c) = this {
            if c.batch == batch && c.stage == stage {
                eprintln!("accessdrift: test crash at batch {batch} stage {stage}");
                std::process::abort();
            }
        }
    }

    /// The crash point the environment asks for.
    pub(super) fn from_env() -> Option<CrashPoint> {
        let v = std::env::var("ACCESSDRIFT_TEST_CRASH_AT").ok()?;
        let (b, s) = v.split_once(':')?;
        Some(CrashPoint {
            batch: b.parse().ok()?,
            stage: s.to_string(),
        })
    }
}

#[cfg(not(any(debug_assertions, feature = "test-crash")))]
impl CrashPoint {
    /// No hook in release builds.
    #[inline(always)]
    pub(super) fn check(_this: &Option<CrashPoint>, _batch: u64, _stage: &str) {}

    /// No hook in release builds: the variable is ignored.
    #[inline(always)]
    pub(super) fn from_env() -> Option<CrashPoint> {
        None
    }
}
