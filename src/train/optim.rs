//! AdamW with decoupled weight decay on weight matrices only (not biases, norm scales or
//! embeddings' bias-like vectors), global gradient-norm clipping, and an EMA of the weights.
//! candle's own AdamW decays every variable and keeps its moments private, and candle has no
//! clipping or EMA.
//!
//! The weights, moments and EMA live in two flat buffers, one for the decayed matrices and one
//! for the rest, so that an update is a dozen element-wise operations over each buffer rather
//! than a dozen per variable. Every element sees the same f32 operations in the same order as it
//! would variable by variable, so the result is bit for bit the same; what changes is the count
//! of operations, which bounds a step's time on a GPU for a network this small (each is a kernel
//! launch): 153 variables took about 3,500 launches and 153 device-to-host reads per step, and
//! take about 800 and one.

use candle_core::backprop::GradStore;
use candle_core::{Error, Result, Tensor, Var};
use candle_nn::VarMap;

/// Variables that are read and written as one flat, contiguous buffer.
struct FlatVars {
    vars: Vec<Var>,
    /// (start, length) of each variable in the buffer.
    spans: Vec<(usize, usize)>,
}

impl FlatVars {
    fn new(vars: Vec<Var>) -> Self {
        let mut start = 0;
        let spans = vars
            .iter()
            .map(|v| {
                let span = (start, v.elem_count());
                start += span.1;
                span
            })
            .collect();
        Self { vars, spans }
    }

    /// The variables' current values, end to end.
    fn values(&self) -> Result<Tensor> {
        let flat = self
            .vars
            .iter()
            .map(|v| v.as_tensor().detach().flatten_all())
            .collect::<Result<Vec<_>>>()?;
        Tensor::cat(&flat, 0)
    }

    /// The variables' gradients, end to end; a variable without one is an error, since skipping
    /// it would no longer be the update the buffer makes.
    fn gradients(&self, grads: &GradStore, names: &[String]) -> Result<Tensor> {
        let flat = self
            .vars
            .iter()
            .zip(names)
            .map(|(v, name)| match grads.get(v) {
                Some(g) => g.flatten_all(),
                None => Err(Error::Msg(format!("the variable {name} got no gradient"))),
            })
            .collect::<Result<Vec<_>>>()?;
        Tensor::cat(&flat, 0)
    }

    /// Copies each variable's slice of `flat` into it.
    fn assign(&self, flat: &Tensor) -> Result<()> {
        for (var, &(start, len)) in self.vars.iter().zip(&self.spans) {
            var.set(&flat.narrow(0, start, len)?.reshape(var.shape())?)?;
        }
        Ok(())
    }
}

/// The variables that one flat buffer updates together, with their state.
struct Group {
    vars: FlatVars,
    names: Vec<String>,
    /// Whether weight decay applies (weight matrices: rank 2 and above).
    decayed: bool,
    /// The master copy of the weights; the variables are copies of its slices.
    theta: Tensor,
    m: Tensor,
    v: Tensor,
}

/// AdamW over a fixed, name-sorted list of variables.
pub struct AdamW {
    groups: Vec<Group>,
    /// (group, position in it) of each variable, in the name-sorted order, which fixes the order
    /// in which the gradient norm is summed.
    order: Vec<(usize, usize)>,
    step: i32,
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    pub weight_decay: f64,
}

impl AdamW {
    /// `vars` in name order; weight matrices (rank 2 and above) are decayed, the rest are not.
    pub fn new(vars: Vec<(String, Var)>, weight_decay: f64) -> Result<Self> {
        let mut split: [(Vec<String>, Vec<Var>); 2] = Default::default();
        let mut order = Vec::with_capacity(vars.len());
        for (name, var) in vars {
            let g = usize::from(var.rank() < 2);
            order.push((g, split[g].1.len()));
            split[g].0.push(name);
            split[g].1.push(var);
        }
        let groups = split
            .into_iter()
            .enumerate()
            .filter(|(_, (names, _))| !names.is_empty())
            .map(|(g, (names, vars))| {
                let vars = FlatVars::new(vars);
                let theta = vars.values()?;
                Ok(Group {
                    vars,
                    names,
                    decayed: g == 0,
                    m: theta.zeros_like()?,
                    v: theta.zeros_like()?,
                    theta,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        // With one group empty, the other is group 0.
        let order = order
            .into_iter()
            .map(|(g, i)| (g.min(groups.len() - 1), i))
            .collect();
        Ok(Self {
            groups,
            order,
            step: 0,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay,
        })
    }

    /// Each group's gradients as one flat buffer, scaled so that their global L2 norm is at most
    /// `max_norm`; also the norm before clipping. The norm is summed in f64 over the variables'
    /// f32 sums of squares in name order, read from the device at once.
    pub fn clipped_gradients(
        &self,
        grads: &GradStore,
        max_norm: f64,
    ) -> Result<(Vec<Tensor>, f64)> {
        let flat = self
            .groups
            .iter()
            .map(|g| g.vars.gradients(grads, &g.names))
            .collect::<Result<Vec<_>>>()?;
        let squares = self
            .order
            .iter()
            .map(|&(g, i)| {
                let (start, len) = self.groups[g].vars.spans[i];
                flat[g].narrow(0, start, len)?.sqr()?.sum_all()?.reshape(1)
            })
            .collect::<Result<Vec<_>>>()?;
        let total: f64 = Tensor::cat(&squares, 0)?
            .to_vec1::<f32>()?
            .into_iter()
            .map(f64::from)
            .sum();
        let norm = total.sqrt();
        if norm > max_norm {
            let scale = max_norm / (norm + 1e-6);
            let scaled = flat.iter().map(|g| g * scale).collect::<Result<_>>()?;
            return Ok((scaled, norm));
        }
        Ok((flat, norm))
    }

    /// One update with learning rate `lr`, from the gradients of [`Self::clipped_gradients`].
    pub fn step(&mut self, gradients: &[Tensor], lr: f64) -> Result<()> {
        self.step += 1;
        let bc1 = 1.0 - self.beta1.powi(self.step);
        let bc2 = 1.0 - self.beta2.powi(self.step);
        for (group, g) in self.groups.iter_mut().zip(gradients) {
            let m = ((&group.m * self.beta1)? + (g * (1.0 - self.beta1))?)?;
            let v = ((&group.v * self.beta2)? + (g.sqr()? * (1.0 - self.beta2))?)?;
            let update = ((&m / bc1)? / ((&v / bc2)?.sqrt()? + self.eps)?)?;
            let decayed = if group.decayed && self.weight_decay > 0.0 {
                (&group.theta * (1.0 - lr * self.weight_decay))?
            } else {
                group.theta.clone()
            };
            group.theta = (decayed - (update * lr)?)?;
            group.vars.assign(&group.theta)?;
            group.m = m;
            group.v = v;
        }
        Ok(())
    }
}

/// Exponential moving average of the weights, kept in a second set of variables so that a
/// second network built on them evaluates and saves the averaged weights.
pub struct Ema {
    /// The shadows, grouped as the optimizer groups the weights they follow.
    groups: Vec<(FlatVars, Tensor)>,
    pub max_decay: f64,
    updates: u64,
}

impl Ema {
    /// `shadows`: one per variable of `opt`, in the same (name) order, each already holding the
    /// initial value.
    pub fn new(opt: &AdamW, shadows: Vec<(String, Var)>, max_decay: f64) -> Result<Self> {
        let mut grouped: Vec<Vec<Option<Var>>> = opt
            .groups
            .iter()
            .map(|g| vec![None; g.names.len()])
            .collect();
        for (&(g, i), (_, shadow)) in opt.order.iter().zip(shadows) {
            grouped[g][i] = Some(shadow);
        }
        let groups = grouped
            .into_iter()
            .map(|vars| {
                let vars = vars
                    .into_iter()
                    .map(|v| v.ok_or_else(|| Error::Msg("a variable has no EMA shadow".into())))
                    .collect::<Result<Vec<_>>>()?;
                let vars = FlatVars::new(vars);
                let values = vars.values()?;
                Ok((vars, values))
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            groups,
            max_decay,
            updates: 0,
        })
    }

    /// shadow ← d · shadow + (1 − d) · weight, with d warming up as (1 + n) / (10 + n).
    pub fn update(&mut self, opt: &AdamW) -> Result<()> {
        self.updates += 1;
        let n = self.updates as f64;
        let d = self.max_decay.min((1.0 + n) / (10.0 + n));
        for ((vars, shadow), group) in self.groups.iter_mut().zip(&opt.groups) {
            *shadow = ((&*shadow * d)? + (&group.theta * (1.0 - d))?)?;
            vars.assign(shadow)?;
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

/// (name, var) sorted by name, so optimiser state and EMA pairs line up deterministically.
pub fn sorted_vars(varmap: &VarMap) -> Vec<(String, Var)> {
    let mut vars: Vec<(String, Var)> = varmap
        .data()
        .lock()
        .expect("varmap")
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    vars.sort_by(|a, b| a.0.cmp(&b.0));
    vars
}

/// A copy of every variable's current value.
pub fn snapshot(
    varmap: &VarMap,
) -> crate::error::Result<std::collections::HashMap<String, Tensor>> {
    let data = varmap.data().lock().expect("varmap");
    Ok(data
        .iter()
        .map(|(name, var)| Ok((name.clone(), var.as_tensor().copy()?)))
        .collect::<candle_core::Result<_>>()?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::SeededRng;
    use candle_core::{Device, Shape};

    /// Variables of mixed ranks (two decayed, two not), with seeded values, in name order.
    fn variables(rng: &mut SeededRng) -> Vec<(String, Var)> {
        let shapes: [(&str, Shape); 4] = [
            ("a.weight", (3, 2, 2).into()),
            ("b.bias", 5.into()),
            ("c.weight", (4, 3).into()),
            ("d.scale", 3.into()),
        ];
        shapes
            .into_iter()
            .map(|(name, shape)| {
                let values = rng.normals_f32(shape.elem_count());
                let var = Var::from_tensor(&Tensor::from_vec(values, shape, &Device::Cpu).unwrap());
                (name.to_string(), var.unwrap())
            })
            .collect()
    }

    /// A loss whose gradients differ per element and grow with `scale`.
    fn loss(vars: &[(String, Var)], scale: f64) -> Result<Tensor> {
        let mut total = Tensor::new(0f32, &Device::Cpu)?;
        for (k, (_, v)) in vars.iter().enumerate() {
            let term =
                ((v.as_tensor().sqr()? * (scale * (k + 1) as f64))? + (v.as_tensor() * scale)?)?;
            total = (total + term.sum_all()?)?;
        }
        Ok(total)
    }

    /// The definition, variable by variable: clip by the global norm, then AdamW with decay on
    /// rank 2 and above.
    fn reference_step(vars: &[(String, Var)], state: &mut [(Tensor, Tensor)], n: i32, scale: f64) {
        let (b1, b2, eps, wd, lr, max_norm): (f64, f64, f64, f64, f64, f64) =
            (0.9, 0.999, 1e-8, 0.01, 1e-2, 1.0);
        let grads = loss(vars, scale).unwrap().backward().unwrap();
        let g: Vec<Tensor> = vars
            .iter()
            .map(|(_, v)| grads.get(v).unwrap().clone())
            .collect();
        let total: f64 = g
            .iter()
            .map(|g| {
                g.sqr()
                    .unwrap()
                    .sum_all()
                    .unwrap()
                    .to_scalar::<f32>()
                    .unwrap() as f64
            })
            .sum();
        let norm = total.sqrt();
        let g: Vec<Tensor> = if norm > max_norm {
            g.iter()
                .map(|g| (g * (max_norm / (norm + 1e-6))).unwrap())
                .collect()
        } else {
            g
        };
        let (bc1, bc2) = (1.0 - b1.powi(n), 1.0 - b2.powi(n));
        for (((_, var), g), (m, v)) in vars.iter().zip(&g).zip(state.iter_mut()) {
            *m = ((&*m * b1).unwrap() + (g * (1.0 - b1)).unwrap()).unwrap();
            *v = ((&*v * b2).unwrap() + (g.sqr().unwrap() * (1.0 - b2)).unwrap()).unwrap();
            let update = ((&*m / bc1).unwrap()
                / ((&*v / bc2).unwrap().sqrt().unwrap() + eps).unwrap())
            .unwrap();
            let theta = var.as_tensor();
            let decayed = if theta.rank() >= 2 {
                (theta * (1.0 - lr * wd)).unwrap()
            } else {
                theta.clone()
            };
            var.set(&(decayed - (update * lr).unwrap()).unwrap())
                .unwrap();
        }
    }

    fn values(var: &Var) -> Vec<f32> {
        var.as_tensor()
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap()
    }

    fn bits(vars: &[(String, Var)]) -> Vec<Vec<u32>> {
        vars.iter()
            .map(|(_, v)| values(v).into_iter().map(f32::to_bits).collect())
            .collect()
    }

    /// The flat buffers give bit for bit the per-variable update, with the clip both idle
    /// (small gradients) and active (large ones), and the EMA follows the weights.
    #[test]
    fn flat_update_is_the_per_variable_update_bit_for_bit() {
        let flat_vars = variables(&mut SeededRng::new(3, 0));
        let reference = variables(&mut SeededRng::new(3, 0));
        let shadows = variables(&mut SeededRng::new(3, 0));
        let mut opt = AdamW::new(flat_vars.clone(), 0.01).unwrap();
        let mut ema = Ema::new(&opt, shadows.clone(), 0.5).unwrap();
        let mut state: Vec<(Tensor, Tensor)> = reference
            .iter()
            .map(|(_, v)| (v.zeros_like().unwrap(), v.zeros_like().unwrap()))
            .collect();
        for (n, scale) in [(1, 0.01), (2, 10.0), (3, 0.01), (4, 10.0)] {
            let grads = loss(&flat_vars, scale).unwrap().backward().unwrap();
            let (gradients, norm) = opt.clipped_gradients(&grads, 1.0).unwrap();
            assert_eq!(norm > 1.0, scale > 1.0, "step {n}: norm {norm}");
            opt.step(&gradients, 1e-2).unwrap();
            reference_step(&reference, &mut state, n, scale);
            assert_eq!(bits(&flat_vars), bits(&reference), "step {n}");

            let before = bits(&shadows);
            ema.update(&opt).unwrap();
            let d = 0.5f64.min((1.0 + n as f64) / (10.0 + n as f64));
            let (d, rest) = (d as f32, (1.0 - d) as f32);
            for (((_, shadow), (_, var)), old) in shadows.iter().zip(&flat_vars).zip(before) {
                let weights = values(var);
                let expected: Vec<f32> = old
                    .into_iter()
                    .zip(weights)
                    .map(|(s, w)| f32::from_bits(s) * d + w * rest)
                    .collect();
                let got = values(shadow);
                assert_eq!(got, expected, "EMA after step {n}");
            }
        }
    }

    /// A variable that took no part in the loss is named, not silently skipped.
    #[test]
    fn a_variable_without_a_gradient_is_an_error_naming_it() {
        let vars = variables(&mut SeededRng::new(5, 0));
        let opt = AdamW::new(vars.clone(), 0.01).unwrap();
        let grads = loss(&vars[..3], 1.0).unwrap().backward().unwrap();
        let err = opt
            .clipped_gradients(&grads, 1.0)
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("d.scale"), "{err}");
    }
}
