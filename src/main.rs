fn main() {
    std::process::exit(mixop::main());
}
