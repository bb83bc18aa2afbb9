//! Compile-time behaviour of the macros: what compiles (and runs), and the
//! exact errors of what does not.
//!
//! The `.stderr` files are pinned to one toolchain; regenerate them with
//! `TRYBUILD=overwrite cargo test -p platform-macros --test ui`.

#[rustversion::attr(not(stable(1.95)), ignore = "UI output is pinned to Rust 1.95")]
#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.pass("tests/ui/pass/*.rs");
    t.compile_fail("tests/ui/fail/*.rs");
}
