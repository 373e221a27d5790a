//! The model: a regime-conditioned 1D U-Net that corrects the noise prediction of a fitted prior
//! (each regime's hidden Markov chain of volatility states over Gaussian days), its
//! architecture, the factor encoder and decoder of a diffusion factor model, its seeded
//! initialisation, the fast CPU inference twin, each asset's idiosyncratic jumps drawn beside
//! the network (`jumps.rs`), and the model folder it is saved in (read and
//! written by `store.rs`).

mod blocks;
mod config;
mod conv;
mod factors;
mod fast;
mod init;
mod jumps;
mod matmul;
mod noise_prediction;
mod prior;
mod store;
mod unet;

pub use config::{UNetConfig, MAX_ASSETS, MAX_CHANNELS, MAX_LEVELS, MAX_REGIMES, MAX_WINDOW};
pub use conv::Conv1d;
pub use factors::fold_factor_maps;
pub use fast::FastUNet;
pub use init::SeededInit;
pub use jumps::{IdiosyncraticJumps, Layout, RegimeJumps};
pub use matmul::matmul;
pub use noise_prediction::{pad_mask, predict_eps};
pub use prior::{
    scale_grid, state_grid, ClassBasis, GaussianPrior, PriorPredictor, VolatilityChain,
};
pub use store::{
    check_model_target, load_model, read_loss_log, save_model, stored_weights, DistillRecord,
    LoadedModel, ModelCard, Normalisation, TrainingRecord, CONFIG_FILE, DEFAULT_MODEL,
    FORMAT_VERSION, LOSS_LOG, WEIGHTS_FILE,
};
pub use unet::UNet1d;

/// `fit(i)` for i in `0..count`, each on a thread of its own, in order: the per-regime fits of
/// the prior and of the jumps, which are independent and of similar size.
pub(crate) fn one_thread_each<T: Send>(count: usize, fit: impl Fn(usize) -> T + Sync) -> Vec<T> {
    let fit = &fit;
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..count).map(|i| scope.spawn(move || fit(i))).collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("a per-regime fit panicked"))
            .collect()
    })
}

/// A network that computes F(x_t, t, c) for the samplers: the candle [`UNet1d`] (any device,
/// trainable) or its CPU inference twin [`FastUNet`]. `x` is (batch, assets, padded_len),
/// `t` (batch,) f32 timesteps, `regimes` (batch,) u32.
pub trait Denoiser {
    fn config(&self) -> &UNetConfig;
    fn forward(
        &self,
        x: &candle_core::Tensor,
        t: &candle_core::Tensor,
        regimes: &candle_core::Tensor,
    ) -> candle_core::Result<candle_core::Tensor>;
    /// The Gaussian part of the noise prediction, when the model has one.
    fn prior(&self) -> Option<&PriorPredictor>;
}

impl Denoiser for UNet1d {
    fn config(&self) -> &UNetConfig {
        UNet1d::config(self)
    }

    fn forward(
        &self,
        x: &candle_core::Tensor,
        t: &candle_core::Tensor,
        regimes: &candle_core::Tensor,
    ) -> candle_core::Result<candle_core::Tensor> {
        UNet1d::forward(self, x, t, regimes)
    }

    fn prior(&self) -> Option<&PriorPredictor> {
        self.prior()
    }
}

impl Denoiser for FastUNet {
    fn config(&self) -> &UNetConfig {
        FastUNet::config(self)
    }

    fn forward(
        &self,
        x: &candle_core::Tensor,
        t: &candle_core::Tensor,
        regimes: &candle_core::Tensor,
    ) -> candle_core::Result<candle_core::Tensor> {
        let out = FastUNet::forward(
            self,
            &x.flatten_all()?.to_vec1::<f32>()?,
            &t.to_vec1::<f32>()?,
            &regimes.to_vec1::<u32>()?,
        );
        candle_core::Tensor::from_vec(out, x.shape(), x.device())
    }

    fn prior(&self) -> Option<&PriorPredictor> {
        self.prior()
    }
}

/// Which implementation of the network runs inference.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Engine {
    /// [`FastUNet`] on the CPU, candle on other devices.
    Auto,
    /// Always [`FastUNet`] (CPU only).
    Fast,
    /// Always candle's [`UNet1d`].
    Candle,
}

/// Total number of scalar parameters in `varmap`.
pub fn parameter_count(varmap: &candle_nn::VarMap) -> usize {
    varmap.all_vars().iter().map(|v| v.elem_count()).sum()
}
