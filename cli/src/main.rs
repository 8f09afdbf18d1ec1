fn main() {
    println!("kubectl-kompox: not yet implemented");
}
