//! AdamW with decoupled weight decay on weight matrices only (not biases, norm scales or
//! embeddings' bias-like vectors), global gradient-norm clipping, and an EMA of the weights.
//! candle's own AdamW decays every variable and keeps its moments private, and candle has no
//! clipping or EMA.

use candle_core::backprop::GradStore;
use candle_core::{Result, Tensor, Var};

/// AdamW over a fixed, name-sorted list of variables.
pub struct AdamW {
    vars: Vec<(String, Var)>,
    m: Vec<Tensor>,
    v: Vec<Tensor>,
    step: i32,
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    pub weight_decay: f64,
}

impl AdamW {
    pub fn new(vars: Vec<(String, Var)>, weight_decay: f64) -> Result<Self> {
        let m = vars
            .iter()
            .map(|(_, v)| v.zeros_like())
            .collect::<Result<Vec<_>>>()?;
        let v = vars
            .iter()
            .map(|(_, v)| v.zeros_like())
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            vars,
            m,
            v,
            step: 0,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay,
        })
    }

    /// Scales the gradients so that their global L2 norm is at most `max_norm`; returns the norm
    /// before clipping.
    pub fn clip_gradients(&self, grads: &mut GradStore, max_norm: f64) -> Result<f64> {
        let mut total = 0f64;
        for (_, var) in &self.vars {
            if let Some(g) = grads.get(var) {
                total += g.sqr()?.sum_all()?.to_scalar::<f32>()? as f64;
            }
        }
        let norm = total.sqrt();
        if norm > max_norm {
            let scale = max_norm / (norm + 1e-6);
            for (_, var) in &self.vars {
                if let Some(g) = grads.get(var) {
                    let scaled = (g * scale)?;
                    grads.insert(var, scaled);
                }
            }
        }
        Ok(norm)
    }

    /// One update with learning rate `lr`.
    pub fn step(&mut self, grads: &GradStore, lr: f64) -> Result<()> {
        self.step += 1;
        let bc1 = 1.0 - self.beta1.powi(self.step);
        let bc2 = 1.0 - self.beta2.powi(self.step);
        for (k, (_, var)) in self.vars.iter().enumerate() {
            let Some(g) = grads.get(var) else { continue };
            let m = ((&self.m[k] * self.beta1)? + (g * (1.0 - self.beta1))?)?;
            let v = ((&self.v[k] * self.beta2)? + (g.sqr()? * (1.0 - self.beta2))?)?;
            let update = ((&m / bc1)? / ((&v / bc2)?.sqrt()? + self.eps)?)?;
            let theta = var.as_tensor();
            let decayed = if theta.rank() >= 2 && self.weight_decay > 0.0 {
                (theta * (1.0 - lr * self.weight_decay))?
            } else {
                theta.clone()
            };
            var.set(&(decayed - (update * lr)?)?)?;
            self.m[k] = m;
            self.v[k] = v;
        }
        Ok(())
    }
}

/// Exponential moving average of the weights, kept in a second set of variables so that a
/// second network built on them evaluates and saves the averaged weights.
pub struct Ema {
    pairs: Vec<(Var, Var)>,
    pub max_decay: f64,
    updates: u64,
}

impl Ema {
    /// `pairs`: (trained variable, its shadow), the shadow already holding the initial value.
    pub fn new(pairs: Vec<(Var, Var)>, max_decay: f64) -> Self {
        Self {
            pairs,
            max_decay,
            updates: 0,
        }
    }

    /// shadow ← d · shadow + (1 − d) · weight, with d warming up as (1 + n) / (10 + n).
    pub fn update(&mut self) -> Result<()> {
        self.updates += 1;
        let n = self.updates as f64;
        let d = self.max_decay.min((1.0 + n) / (10.0 + n));
        for (var, shadow) in &self.pairs {
            let next = ((shadow.as_tensor() * d)? + (var.as_tensor().detach() * (1.0 - d))?)?;
            shadow.set(&next)?;
        }
        Ok(())
    }
}

/// Linear warm-up to `peak`, then cosine decay to `peak * floor` at `total` steps.
pub fn learning_rate(step: usize, total: usize, warmup: usize, peak: f64, floor: f64) -> f64 {
    if step < warmup {
        return peak * (step + 1) as f64 / warmup as f64;
    }
    let progress = ((step - warmup) as f64 / (total.saturating_sub(warmup)).max(1) as f64).min(1.0);
    peak * (floor + (1.0 - floor) * 0.5 * (1.0 + (std::f64::consts::PI * progress).cos()))
}
