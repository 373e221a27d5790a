//! Seeded weight initialisation: a `VarBuilder` backend that creates each variable from the
//! project's generator with the initialiser candle's layer asked for, so a given seed always
//! builds the same network (candle's own initialisers draw from an unseedable generator).

use std::sync::Mutex;

use candle_core::{DType, Device, Shape, Tensor, Var};
use candle_nn::init::{FanInOut, NormalOrUniform};
use candle_nn::{Init, VarBuilder, VarMap};

use crate::rng::SeededRng;

/// Creates missing variables from a seeded stream and stores them in a `VarMap`.
pub struct SeededInit {
    varmap: VarMap,
    rng: Mutex<SeededRng>,
}

impl SeededInit {
    /// A `VarBuilder` whose new variables are drawn from `seed` and registered in `varmap`.
    pub fn var_builder(varmap: &VarMap, seed: u64, device: &Device) -> VarBuilder<'static> {
        let backend = SeededInit {
            varmap: varmap.clone(),
            rng: Mutex::new(SeededRng::new(seed, u64::MAX)),
        };
        VarBuilder::from_backend(Box::new(backend), DType::F32, device.clone())
    }

    fn draw(&self, shape: &Shape, init: Init) -> Vec<f32> {
        let n = shape.elem_count();
        let mut rng = self.rng.lock().expect("init generator");
        let normal = |rng: &mut SeededRng, mean: f64, std: f64| -> Vec<f32> {
            (0..n).map(|_| (mean + std * rng.normal()) as f32).collect()
        };
        let uniform = |rng: &mut SeededRng, lo: f64, up: f64| -> Vec<f32> {
            (0..n)
                .map(|_| (lo + (up - lo) * rng.uniform()) as f32)
                .collect()
        };
        match init {
            Init::Const(v) => vec![v as f32; n],
            Init::Randn { mean, stdev } => normal(&mut rng, mean, stdev),
            Init::Uniform { lo, up } => uniform(&mut rng, lo, up),
            Init::Kaiming {
                dist,
                fan,
                non_linearity,
            } => {
                let fan = match fan {
                    FanInOut::FanIn => FanInOut::FanIn.for_shape(shape),
                    FanInOut::FanOut => FanInOut::FanOut.for_shape(shape),
                };
                let std = non_linearity.gain() / (fan as f64).sqrt();
                match dist {
                    NormalOrUniform::Normal => normal(&mut rng, 0.0, std),
                    NormalOrUniform::Uniform => {
                        let bound = 3f64.sqrt() * std;
                        uniform(&mut rng, -bound, bound)
                    }
                }
            }
        }
    }
}

impl candle_nn::var_builder::SimpleBackend for SeededInit {
    fn get(
        &self,
        shape: Shape,
        name: &str,
        init: Init,
        dtype: DType,
        dev: &Device,
    ) -> candle_core::Result<Tensor> {
        let mut data = self.varmap.data().lock().expect("varmap");
        if let Some(var) = data.get(name) {
            if var.shape() != &shape {
                candle_core::bail!(
                    "variable {name}: shape {:?}, asked for {shape:?}",
                    var.shape()
                );
            }
            return Ok(var.as_tensor().clone());
        }
        let values = self.draw(&shape, init);
        let tensor = Tensor::from_vec(values, shape, dev)?.to_dtype(dtype)?;
        let var = Var::from_tensor(&tensor)?;
        data.insert(name.to_string(), var.clone());
        Ok(var.as_tensor().clone())
    }

    fn get_unchecked(
        &self,
        name: &str,
        _dtype: DType,
        _dev: &Device,
    ) -> candle_core::Result<Tensor> {
        match self.varmap.data().lock().expect("varmap").get(name) {
            Some(v) => Ok(v.as_tensor().clone()),
            None => candle_core::bail!("variable {name} does not exist"),
        }
    }

    fn contains_tensor(&self, name: &str) -> bool {
        self.varmap
            .data()
            .lock()
            .expect("varmap")
            .contains_key(name)
    }
}
