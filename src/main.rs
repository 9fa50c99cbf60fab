fn main() {
    // First: a panic anywhere ends the process cleanly, whatever the command.
    opsdeck::crash::install_hook();
    std::process::exit(opsdeck::cli::main());
}
