//! Choosing where tensors live: `cpu`, `cuda` (the `cuda` cargo feature and a GPU), or `auto`.

use candle_core::Device;

use crate::error::{Error, Result};

/// The device named by `--device`.
pub fn select_device(name: &str) -> Result<Device> {
    match name {
        "cpu" => Ok(Device::Cpu),
        "cuda" => {
            if !cfg!(feature = "cuda") {
                return Err(Error::option(
                    "--device",
                    name,
                    "this scengen was built without CUDA; rebuild with `--features cuda` (see README)",
                ));
            }
            Device::new_cuda(0)
                .map_err(|e| Error::option("--device", name, format!("no usable GPU: {e}")))
        }
        "auto" => Ok(Device::cuda_if_available(0).unwrap_or(Device::Cpu)),
        other => Err(Error::option(
            "--device",
            other,
            "expected cpu, cuda or auto",
        )),
    }
}
