fn main() {
    std::process::exit(zdaemon_rs::supervisor::main());
}
