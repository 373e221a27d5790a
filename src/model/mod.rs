//! The network: a regime-conditioned 1D U-Net that predicts the noise in a window of returns,
//! its architecture, its seeded initialisation, and the model directory it is saved in.

mod blocks;
mod config;
mod conv;
mod init;
mod store;
mod unet;

pub use config::UNetConfig;
pub use conv::Conv1d;
pub use init::SeededInit;
pub use store::{
    load_model, LoadedModel, ModelCard, Normalisation, TrainingRecord, CONFIG_FILE, WEIGHTS_FILE,
};
pub use unet::UNet1d;

/// Total number of scalar parameters in `varmap`.
pub fn parameter_count(varmap: &candle_nn::VarMap) -> usize {
    varmap.all_vars().iter().map(|v| v.elem_count()).sum()
}
