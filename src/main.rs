fn main() {
    std::process::exit(opsdeck::cli::main());
}
