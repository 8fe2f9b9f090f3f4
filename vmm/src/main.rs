fn main() {
    println!("vireo-vmm {}", env!("CARGO_PKG_VERSION"));
}
