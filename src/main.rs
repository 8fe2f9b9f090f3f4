fn main() {
    println!("vireo {}", env!("CARGO_PKG_VERSION"));
}
