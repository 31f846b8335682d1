//! Writing to stdout when the reader may go away (`accessdrift findings | head -1`).
//!
//! Rust ignores SIGPIPE, so a write to a closed pipe returns `BrokenPipe` and `println!`
//! panics on it. Commands print with [`out!`] / [`outln!`], which return the error; `main`
//! recognises it with [`is_broken_pipe`] and exits with `EXIT_BROKEN_PIPE`, silently.
//! Restoring the default SIGPIPE action instead would also kill the daemon on a peer that
//! closes a socket, so the error is handled where it surfaces.

use std::io::ErrorKind;

/// `print!` that returns the `std::io::Result` instead of panicking.
macro_rules! out {
    ($($arg:tt)*) => {{
        use ::std::io::Write as _;
        ::std::write!(::std::io::stdout().lock(), $($arg)*)
    }};
}

/// `println!` that returns the `std::io::Result` instead of panicking.
macro_rules! outln {
    ($($arg:tt)*) => {{
        use ::std::io::Write as _;
        ::std::writeln!(::std::io::stdout().lock(), $($arg)*)
    }};
}

/// True when the error (or any cause in its chain) is a write to a closed pipe.
pub fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == ErrorKind::BrokenPipe)
    })
}

/// The panic `println!` raises on a closed stdout: "failed printing to stdout: Broken pipe".
fn is_stdout_broken_pipe_panic(message: &str) -> bool {
    message.starts_with("failed printing to stdout") && message.contains("os error 32")
}

/// Backstop for printing code that still uses `println!`: its broken-pipe panic exits with
/// `EXIT_BROKEN_PIPE` and no message, like the [`outln!`] path. Every other panic is
/// reported as before. Exiting here skips destructors; an open transaction is rolled back by
/// SQLite, as after any crash.
pub fn exit_quietly_on_broken_pipe_panic() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let payload = info.payload();
        let message = payload
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| payload.downcast_ref::<&str>().copied())
            .unwrap_or("");
        if is_stdout_broken_pipe_panic(message) {
            std::process::exit(i32::from(super::EXIT_BROKEN_PIPE));
        }
        default(info);
    }));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognises_a_broken_pipe_anywhere_in_the_chain() {
        let io = std::io::Error::from(ErrorKind::BrokenPipe);
        assert!(is_broken_pipe(&anyhow::Error::new(io).context("writing")));
        let other = std::io::Error::from(ErrorKind::NotFound);
        assert!(!is_broken_pipe(&anyhow::Error::new(other)));
        assert!(is_stdout_broken_pipe_panic(
            "failed printing to stdout: Broken pipe (os error 32)"
        ));
        assert!(!is_stdout_broken_pipe_panic("index out of bounds"));
    }
}
