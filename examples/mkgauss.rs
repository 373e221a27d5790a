use std::path::Path;
include!("/tmp/gw.rs");
fn main() {
    let chol = [1.0, 0.0, 0.0, 1.2, 1.6, 0.0, -0.15, 0.1375, 0.4433];
    write_gaussian_windows(Path::new("/tmp/gauss.parquet"), &chol, 3, 8, 800, 2.5, 11);
}
