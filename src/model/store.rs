//! A model directory: `model.safetensors` (EMA weights) and `config.json` (everything needed to
//! rebuild the network and undo the standardisation), checked when loaded.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
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
    /// What the network was trained to predict (models written before the choice: ε).
    #[serde(default)]
    pub objective: crate::diffusion::Objective,
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
    /// Each regime's idiosyncratic jumps, taken out of the training windows and added to every
    /// generated path; absent in models trained without them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jumps: Option<crate::model::IdiosyncraticJumps>,
    pub training: TrainingRecord,
    /// SHA-256 of `model.safetensors`, checked on load, so that flipped bits or another
    /// model's weights are an error rather than different scenarios. Absent in models written
    /// before it: those load unchecked, with a warning.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weights_sha256: Option<String>,
    /// Present when the weights were distilled for a few-step sampler (`scengen distill`),
    /// which `generate` then uses unless another is asked for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub distilled: Option<DistillRecord>,
}

/// How a model's weights were distilled from a trained model's, for provenance and for the
/// sampler they were trained to run under.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DistillRecord {
    /// The sampler the weights were trained through, the model's default.
    pub sampler: crate::diffusion::SamplerKind,
    /// The trained model and the sampler whose scenarios the distilled sampler matches.
    pub teacher: String,
    pub teacher_sha256: String,
    pub teacher_sampler: crate::diffusion::SamplerKind,
    pub teacher_paths: usize,
    pub seed: u64,
    pub steps_run: usize,
    /// The optimiser step whose weights were kept (0: the teacher's).
    pub best_step: usize,
    /// Energy distance between the distilled sampler's validation paths and the teacher's
    /// held-out paths, summed over the regimes: (step, distance) at each check, first the
    /// teacher's own weights under the few-step sampler.
    pub validation_energy_distance: Vec<(usize, f64)>,
    pub wall_seconds: f64,
}

impl ModelCard {
    /// The index of a regime label, or an error listing the known ones.
    pub fn regime_index(&self, label: &str) -> Result<usize> {
        crate::data::label_index(&self.labels, label)
    }
}

/// The most diffusion timesteps a model may have.
pub const MAX_TIMESTEPS: usize = 100_000;

/// The model folder format `train` and `distill` write; `generate` reads this one and the ones
/// before it (which differ only in fields that have defaults). Version 3 added `distilled`: a
/// scengen that ignored it would run distilled weights under the wrong sampler. Version 4 added
/// `jumps`: one that ignored them would draw paths without each asset's own tails.
pub const FORMAT_VERSION: u32 = 4;

/// Most a normalisation std (of daily log returns) may be: a daily standard deviation of 100%
/// is no market's; a larger one is a corrupt card, not a volatile asset.
const MAX_DAILY_STD: f64 = 1.0;
/// Least a normalisation std may be: ingest refuses constant assets, and 1e-10 is far below
/// any traded asset's daily moves.
const MIN_DAILY_STD: f64 = 1e-10;
/// Largest standardised return the clip may allow.
const MAX_CLIP: f64 = 1e4;

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
    let weights_file = dir.path().join(WEIGHTS_FILE);
    let shown = out.join(WEIGHTS_FILE);
    candle_core::safetensors::save(weights, &weights_file)
        .map_err(|e| Error::bad_file(&shown, e))?;
    let card = ModelCard {
        weights_sha256: Some(sha256_file(&weights_file)?),
        ..card.clone()
    };
    let json = serde_json::to_string_pretty(&card).expect("card serialises");
    dir.write_text(CONFIG_FILE, &json)?;
    // The safetensors writer creates its file private (0600); the weights get the mode every
    // other file of the folder gets (the umask's), so that the users who can read the card can
    // read the weights.
    let card_mode = std::fs::metadata(dir.path().join(CONFIG_FILE))
        .map_err(|e| Error::io(out.join(CONFIG_FILE), e))?
        .permissions();
    std::fs::set_permissions(&weights_file, card_mode).map_err(|e| Error::io(&shown, e))?;
    dir.write_text(LOSS_LOG, loss_log)?;
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

impl LoadedModel {
    /// Runs the network on `prior` instead of the card's: the same model with its windows
    /// starting elsewhere (see [`crate::model::GaussianPrior::starting_at`]).
    pub fn use_prior(&mut self, prior: &crate::model::GaussianPrior) {
        let predictor = prior.predictor(self.card.architecture.window);
        if let Some(fast) = &mut self.fast {
            fast.set_prior(predictor.clone());
        }
        self.network.set_prior(predictor);
    }
}

/// Loads and checks a model directory: the card's every size and number first, then the
/// weights' hash, then each tensor's shape against the architecture, all before a network is
/// built.
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
    check_card(&card).map_err(|e| bad(format!("{CONFIG_FILE}: {e}")))?;
    let weights_sha256 = sha256_file(&weights_path)?;
    match &card.weights_sha256 {
        Some(expected) if *expected != weights_sha256 => {
            return Err(bad(format!(
                "{WEIGHTS_FILE} has SHA-256 {weights_sha256}, but {CONFIG_FILE} records \
                 {expected}: the weights are corrupt or from another model"
            )))
        }
        Some(_) => {}
        None => tracing::warn!(
            "{}: {CONFIG_FILE} records no SHA-256 of the weights (a model written before \
             version 0.2's manifest); they are used unchecked",
            dir.display()
        ),
    }
    let a = &card.architecture;
    let tensors = candle_core::safetensors::load(&weights_path, device)
        .map_err(|e| bad(format!("{WEIGHTS_FILE} is unreadable: {e}")))?;
    let misfit =
        |e: candle_core::Error| bad(format!("{WEIGHTS_FILE} does not fit {CONFIG_FILE}: {e}"));
    // Built over the stored tensors, which checks each one's shape against the architecture
    // and records the names the network reads; nothing new is allocated.
    let used = NamesRead::new(tensors.clone());
    let names = used.names.clone();
    UNet1d::new(
        a,
        VarBuilder::from_backend(Box::new(used), DType::F32, device.clone()),
    )
    .map_err(misfit)?;
    let names = names.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(extra) = tensors.keys().find(|k| !names.contains(*k)) {
        return Err(bad(format!(
            "{WEIGHTS_FILE} holds `{extra}`, which the architecture lacks"
        )));
    }
    // A factor model runs with its encoder and decoder folded into its first and last
    // convolutions (the same function, and one network for every engine).
    let (runs_as, run_tensors) = fold_factor_maps(a, &tensors).map_err(misfit)?;
    let vb = VarBuilder::from_tensors(run_tensors.clone(), DType::F32, device);
    let mut network = UNet1d::new(&runs_as, vb).map_err(misfit)?;
    let prior = card.prior.as_ref().map(|p| p.predictor(a.window));
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
        weights_sha256,
        device: device.clone(),
    })
}

/// The weights of `model`'s folder as they are stored (a factor model's encoder and decoder
/// apart, not folded into its convolutions), for training them further; refused if the file
/// changed since `model` was loaded.
pub fn stored_weights(model: &LoadedModel) -> Result<HashMap<String, Tensor>> {
    let path = model.dir.join(WEIGHTS_FILE);
    let sha256 = sha256_file(&path)?;
    if sha256 != model.weights_sha256 {
        return Err(Error::BadModel {
            path: model.dir.clone(),
            reason: format!("{WEIGHTS_FILE} changed while it was in use"),
        });
    }
    candle_core::safetensors::load(&path, &model.device).map_err(|e| Error::bad_file(&path, e))
}

/// The per-epoch loss log of a model folder, as `train` wrote it.
pub fn read_loss_log(dir: &Path) -> Result<String> {
    let path = dir.join(LOSS_LOG);
    std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))
}

/// Every size and number of a card that could make loading allocate without bound or make
/// generation write nonsense, checked before anything is built.
fn check_card(card: &ModelCard) -> std::result::Result<(), String> {
    if !(1..=FORMAT_VERSION).contains(&card.format_version) {
        return Err(format!(
            "format_version {} is not one this scengen reads (1 to {FORMAT_VERSION}); \
             a newer scengen wrote it",
            card.format_version
        ));
    }
    let a = &card.architecture;
    a.validate().map_err(|e| e.to_string())?;
    if !(2..=MAX_TIMESTEPS).contains(&card.timesteps) {
        return Err(format!(
            "timesteps {} outside 2..={MAX_TIMESTEPS}",
            card.timesteps
        ));
    }
    let n = card.assets.len();
    let norm = &card.normalisation;
    if a.assets != n
        || norm.mean.len() != n
        || norm.std.len() != n
        || a.regimes != card.labels.len()
        || a.window != card.window
    {
        return Err(format!(
            "inconsistent: {n} assets, {} means, {} stds, {} labels, network for {} assets / {} regimes / {} days, window {}",
            norm.mean.len(), norm.std.len(), card.labels.len(),
            a.assets, a.regimes, a.window, card.window
        ));
    }
    for (i, label) in card.labels.iter().enumerate() {
        crate::data::check_label(label).map_err(|e| format!("label `{label}` {e}"))?;
        if card.labels[..i].contains(label) {
            return Err(format!("label `{label}` appears twice"));
        }
    }
    for (asset, (&mean, &std)) in card.assets.iter().zip(norm.mean.iter().zip(&norm.std)) {
        if !(MIN_DAILY_STD..=MAX_DAILY_STD).contains(&std) {
            return Err(format!(
                "normalisation std {std:e} of `{asset}` is outside {MIN_DAILY_STD:e}..={MAX_DAILY_STD} \
                 (a daily log return's standard deviation)"
            ));
        }
        if !(mean.is_finite() && mean.abs() <= MAX_DAILY_STD) {
            return Err(format!(
                "normalisation mean {mean} of `{asset}` is not a daily log return's"
            ));
        }
    }
    if !(norm.clip > 0.0 && norm.clip <= MAX_CLIP) {
        return Err(format!(
            "clip {} is outside (0, {MAX_CLIP}] (the largest standardised return)",
            norm.clip
        ));
    }
    match &card.prior {
        Some(p) => p.check(a.regimes + 1, n)?,
        None if !card.training.prior_validation_log_likelihood.is_empty() => {
            return Err(
                "the model was trained with a Gaussian prior, but its `prior` is \
                        missing; its network predicts only what the prior leaves"
                    .to_string(),
            )
        }
        None => {}
    }
    if let Some(jumps) = &card.jumps {
        jumps.check(a.regimes, n)?;
    }
    Ok(())
}

/// A weights backend that hands out the stored tensors (checking their shapes, as candle's
/// own does) and records which names the network read.
struct NamesRead {
    tensors: HashMap<String, Tensor>,
    names: std::sync::Arc<std::sync::Mutex<std::collections::HashSet<String>>>,
}

impl NamesRead {
    fn new(tensors: HashMap<String, Tensor>) -> Self {
        Self {
            tensors,
            names: Default::default(),
        }
    }

    fn note(&self, name: &str) {
        self.names
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(name.to_string());
    }
}

impl candle_nn::var_builder::SimpleBackend for NamesRead {
    fn get(
        &self,
        shape: candle_core::Shape,
        name: &str,
        init: candle_nn::Init,
        dtype: DType,
        device: &Device,
    ) -> candle_core::Result<Tensor> {
        self.note(name);
        candle_nn::var_builder::SimpleBackend::get(&self.tensors, shape, name, init, dtype, device)
    }

    fn get_unchecked(
        &self,
        name: &str,
        dtype: DType,
        device: &Device,
    ) -> candle_core::Result<Tensor> {
        self.note(name);
        self.tensors.get_unchecked(name, dtype, device)
    }

    fn contains_tensor(&self, name: &str) -> bool {
        self.tensors.contains_key(name)
    }
}
