//! The `zdctl` command; everything lives in the library.
fn main() -> std::process::ExitCode {
    zdaemon_rs::ctl::main()
}
