//! Choosing where tensors live: `cpu`, `cuda` (the `cuda` cargo feature and a GPU), or `auto`.

use candle_core::Device;

use crate::error::{Error, Result};

/// The device named `name`: `cpu`, `cuda` or `auto`.
pub fn select_device(name: &str) -> Result<Device> {
    match name {
        "cpu" => Ok(Device::Cpu),
        "cuda" => {
            if !cfg!(feature = "cuda") {
                return Err(Error::option(
                    "device",
                    name,
                    "this scengen was built without CUDA; build one with `.ci/build-cuda` (see docs/gpu.md)",
                ));
            }
            // candle appends a backtrace to the driver's error; the first line names the cause.
            Device::new_cuda(0).map_err(|e| {
                let cause = e.to_string();
                let cause = cause.lines().next().unwrap_or_default().to_string();
                Error::option("device", name, format!("no usable GPU: {cause}"))
            })
        }
        "auto" => Ok(Device::cuda_if_available(0).unwrap_or(Device::Cpu)),
        other => Err(Error::option("device", other, "expected cpu, cuda or auto")),
    }
}

/// The name [`select_device`] takes for `device`.
pub fn device_name(device: &Device) -> String {
    if device.is_cuda() {
        "cuda".to_string()
    } else {
        "cpu".to_string()
    }
}
