fn main() {
    println!("vireoctl {}", env!("CARGO_PKG_VERSION"));
}
