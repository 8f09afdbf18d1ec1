fn main() {
    println!("kompox-controller: not yet implemented");
}
