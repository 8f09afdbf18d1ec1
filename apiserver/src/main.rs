fn main() {
    println!("kompox-apiserver: not yet implemented");
}
