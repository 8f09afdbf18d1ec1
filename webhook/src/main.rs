fn main() {
    println!("kompox-webhook: not yet implemented");
}
