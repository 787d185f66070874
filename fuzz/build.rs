//! Links the project's guest-side command-line readers, hosted builds of
//! the test fixtures' C (tests/fixtures/ukparse/ukparse.c: Unikraft 0.17's
//! rules; tests/fixtures/rumpparse/rumpparse.c: Rumprun's), into the
//! round-trip targets. Compiled by gcc without sanitizers: libFuzzer's
//! coverage comes from the Rust side.
fn main() {
    let fixtures = std::path::Path::new("../tests/fixtures");
    let uk = fixtures.join("ukparse/ukparse.c");
    let rump = fixtures.join("rumpparse/rumpparse.c");
    for f in [&uk, &rump] {
        println!("cargo:rerun-if-changed={}", f.display());
    }
    cc::Build::new()
        .file(&uk)
        .define("UKPARSE_HOSTED", None)
        .flag("-ffreestanding")
        .warnings_into_errors(true)
        .compile("ukparse");
    cc::Build::new()
        .file(&rump)
        .define("RUMPPARSE_HOSTED", None)
        .warnings_into_errors(true)
        .compile("rumpparse");
}
