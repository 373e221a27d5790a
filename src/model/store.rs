//! A model directory: `model.safetensors` (EMA weights) and `config.json` (everything needed to
//! rebuild the network and undo the standardisation), checked when loaded.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use candle_nn::{VarBuilder, VarMap};
use serde::{Deserialize, Serialize};

use super::config::UNetConfig;
use super::factors::fold_factor_maps;
use super::unet::UNet1d;
use super::{Denoiser, Engine, FastUNet};
use crate::diffusion::ScheduleKind;
use crate::error::{Error, Result};
use crate::io::sha256_file;

/// Where `train` writes the model and `generate` reads it, unless told otherwise.
pub const DEFAULT_MODEL: &str = "models/default";
/// The weights file of a model folder.
pub const WEIGHTS_FILE: &str = "model.safetensors";
pub const CONFIG_FILE: &str = "config.json";

/// Per-asset standardisation: the network sees (r - mean) / std.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Normalisation {
    pub mean: Vec<f64>,
    pub std: Vec<f64>,
    /// Largest |standardised return| in the training windows: samplers clip their estimates
    /// of x_0 to ±clip.
    pub clip: f64,
}

/// How the model was trained, for provenance.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainingRecord {
    pub data_file: String,
    pub data_sha256: String,
    pub test_from: String,
    pub seed: u64,
    pub epochs_run: usize,
    pub best_epoch: usize,
    pub train_windows: usize,
    pub validation_windows: usize,
    pub final_train_loss: f64,
    pub final_validation_loss: f64,
    pub best_validation_loss: f64,
    pub wall_seconds: f64,
    pub parameters: usize,
    /// Log-likelihood per day of the validation windows under the Gaussian prior, per class
    /// (the regimes, then all windows). The prior is fitted on the whole train period, these
    /// windows included, so this measures fit, not prediction (compare numbers of states on
    /// held-out days instead, as docs/model.md does). Empty without the prior; NaN (`null` in
    /// JSON) for a class without validation days.
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "nan_for_null"
    )]
    pub prior_validation_log_likelihood: Vec<f64>,
}

/// Numbers that JSON wrote as `null` (a NaN, which JSON cannot hold) read back as NaN: a model
/// with a regime that had no validation days must load like any other.
fn nan_for_null<'de, D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Vec<f64>, D::Error> {
    let values: Vec<Option<f64>> = Deserialize::deserialize(d)?;
    Ok(values.into_iter().map(|v| v.unwrap_or(f64::NAN)).collect())
}

/// The content of `config.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelCard {
    pub format_version: u32,
    pub architecture: UNetConfig,
    pub schedule: ScheduleKind,
    pub timesteps: usize,
    pub assets: Vec<String>,
    pub labels: Vec<String>,
    pub window: usize,
    pub normalisation: Normalisation,
    /// The Gaussian part of the noise prediction, in standardised units; absent in models
    /// trained without one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prior: Option<crate::model::GaussianPrior>,
    pub training: TrainingRecord,
}

impl ModelCard {
    /// The index of a regime label, or an error listing the known ones.
    pub fn regime_index(&self, label: &str) -> Result<usize> {
        crate::data::label_index(&self.labels, label)
    }
}

/// The most diffusion timesteps a model may have.
pub const MAX_TIMESTEPS: usize = 100_000;

/// The per-epoch loss log of a model folder.
pub const LOSS_LOG: &str = "loss.csv";

/// Fails if `out` cannot become a model folder (a file, or a folder of other files), so that
/// `train` refuses a bad target before it trains rather than after.
pub fn check_model_target(out: &Path) -> Result<()> {
    let written = [CONFIG_FILE, WEIGHTS_FILE, LOSS_LOG].map(String::from);
    crate::io::check_folder_target(out, &written)
}

/// Writes a model folder: `config.json` (the card), `model.safetensors` (`weights`, name to
/// tensor as the network's `VarBuilder` names them) and the loss log, replacing `out` only when
/// all three are complete.
pub fn save_model(
    out: &Path,
    card: &ModelCard,
    weights: &HashMap<String, Tensor>,
    loss_log: &str,
) -> Result<PathBuf> {
    let dir = crate::io::AtomicDir::new(out)?;
    let json = serde_json::to_string_pretty(card).expect("card serialises");
    crate::io::write_text(&dir.path().join(CONFIG_FILE), &json)?;
    let weights_file = dir.path().join(WEIGHTS_FILE);
    candle_core::safetensors::save(weights, &weights_file)
        .map_err(|e| Error::bad_file(&weights_file, e))?;
    // The safetensors writer creates its file private (0600); the weights get the mode every
    // other file of the folder gets (the umask's), so that the users who can read the card can
    // read the weights.
    let card_mode = std::fs::metadata(dir.path().join(CONFIG_FILE))
        .map_err(|e| Error::io(dir.path().join(CONFIG_FILE), e))?
        .permissions();
    std::fs::set_permissions(&weights_file, card_mode).map_err(|e| Error::io(&weights_file, e))?;
    crate::io::write_text(&dir.path().join(LOSS_LOG), loss_log)?;
    dir.commit()
}

/// A loaded model: its card, its network (and, on the CPU, the fast inference twin) and the
/// SHA-256 of its weights.
pub struct LoadedModel {
    pub dir: PathBuf,
    pub card: ModelCard,
    pub network: UNet1d,
    pub fast: Option<FastUNet>,
    pub weights_sha256: String,
    pub device: Device,
}

impl LoadedModel {
    /// The network `engine` selects; an error naming the `engine` setting for `fast` off the CPU.
    pub fn denoiser(&self, engine: Engine) -> Result<&dyn Denoiser> {
        match (engine, &self.fast) {
            (Engine::Candle, _) | (Engine::Auto, None) => Ok(&self.network),
            (Engine::Fast | Engine::Auto, Some(fast)) => Ok(fast),
            (Engine::Fast, None) => Err(Error::option(
                "engine",
                "fast",
                "the fast inference path runs on the CPU only; use the candle or auto engine",
            )),
        }
    }
}

/// Loads and checks a model directory.
pub fn load_model(dir: &Path, device: &Device) -> Result<LoadedModel> {
    let bad = |reason: String| Error::BadModel {
        path: dir.to_path_buf(),
        reason,
    };
    if dir.is_file() {
        return Err(bad(format!(
            "is a file; a model is a folder holding {CONFIG_FILE} and {WEIGHTS_FILE}"
        )));
    }
    let config_path = dir.join(CONFIG_FILE);
    let weights_path = dir.join(WEIGHTS_FILE);
    for p in [&config_path, &weights_path] {
        if !p.is_file() {
            return Err(bad(format!("{} is missing", p.display())));
        }
    }
    let text = std::fs::read_to_string(&config_path).map_err(|e| Error::io(&config_path, e))?;
    let card: ModelCard =
        serde_json::from_str(&text).map_err(|e| bad(format!("{CONFIG_FILE}: {e}")))?;
    let a = &card.architecture;
    a.validate()
        .map_err(|e| bad(format!("{CONFIG_FILE}: {e}")))?;
    if !(2..=MAX_TIMESTEPS).contains(&card.timesteps) {
        return Err(bad(format!(
            "{CONFIG_FILE}: timesteps {} outside 2..={MAX_TIMESTEPS}",
            card.timesteps
        )));
    }
    let n = card.assets.len();
    if a.assets != n
        || card.normalisation.mean.len() != n
        || card.normalisation.std.len() != n
        || a.regimes != card.labels.len()
        || a.window != card.window
    {
        return Err(bad(format!(
            "{CONFIG_FILE} is inconsistent: {n} assets, {} means, {} stds, {} labels, network for {} assets / {} regimes / {} days, window {}",
            card.normalisation.mean.len(), card.normalisation.std.len(), card.labels.len(),
            a.assets, a.regimes, a.window, card.window
        )));
    }
    if card
        .normalisation
        .std
        .iter()
        .any(|s| !(s.is_finite() && *s > 0.0))
    {
        return Err(bad(format!(
            "{CONFIG_FILE}: a normalisation std or the clip is not positive"
        )));
    }
    let tensors = candle_core::safetensors::load(&weights_path, device)
        .map_err(|e| bad(format!("{WEIGHTS_FILE} is unreadable: {e}")))?;
    let misfit =
        |e: candle_core::Error| bad(format!("{WEIGHTS_FILE} does not fit {CONFIG_FILE}: {e}"));
    if a.factors > 0 {
        // Checked as stored; it runs with the encoder and decoder folded into its first and last
        // convolutions (the same function, and one network for every engine).
        UNet1d::new(
            a,
            VarBuilder::from_tensors(tensors.clone(), DType::F32, device),
        )
        .map_err(misfit)?;
    }
    let expected = parameter_names(a)?;
    if let Some(extra) = tensors.keys().find(|k| !expected.contains(*k)) {
        return Err(bad(format!(
            "{WEIGHTS_FILE} holds `{extra}`, which the architecture lacks"
        )));
    }
    let (runs_as, run_tensors) = fold_factor_maps(a, &tensors).map_err(misfit)?;
    let vb = VarBuilder::from_tensors(run_tensors.clone(), DType::F32, device);
    let mut network = UNet1d::new(&runs_as, vb).map_err(misfit)?;
    let prior = match &card.prior {
        None => None,
        Some(p) => {
            p.check(a.regimes + 1, n)
                .map_err(|e| bad(format!("{CONFIG_FILE}: {e}")))?;
            Some(p.predictor(a.window))
        }
    };
    if let Some(p) = &prior {
        network.set_prior(p.clone());
    }
    let fast = if device.is_cpu() {
        let mut fast = FastUNet::new(&runs_as, &run_tensors).map_err(misfit)?;
        if let Some(p) = prior {
            fast.set_prior(p);
        }
        Some(fast)
    } else {
        None
    };
    Ok(LoadedModel {
        dir: dir.to_path_buf(),
        card,
        network,
        fast,
        weights_sha256: sha256_file(&weights_path)?,
        device: device.clone(),
    })
}

/// Names of every variable of a network with this architecture.
fn parameter_names(config: &UNetConfig) -> Result<std::collections::HashSet<String>> {
    let varmap = VarMap::new();
    let vb = VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
    UNet1d::new(config, vb)?;
    let names = varmap
        .data()
        .lock()
        .expect("varmap")
        .keys()
        .cloned()
        .collect();
    Ok(names)
}
