//! Nelder–Mead simplex minimisation (Gao & Han's adaptive coefficients), for small smooth
//! problems such as a GARCH likelihood where derivatives are not worth writing.

/// The minimum found and whether the simplex converged within the budget.
#[derive(Debug, Clone)]
pub struct Minimum {
    pub x: Vec<f64>,
    pub value: f64,
    pub iterations: usize,
    pub converged: bool,
}

/// Minimises `f` from `start` with initial steps `scale` per coordinate, until the simplex's
/// values and points differ by less than `tol` (relative) or after `max_iter` iterations.
/// Infeasible points should return `f64::INFINITY`.
pub fn nelder_mead(
    f: impl Fn(&[f64]) -> f64,
    start: &[f64],
    scale: &[f64],
    tol: f64,
    max_iter: usize,
) -> Minimum {
    let n = start.len();
    let nf = n as f64;
    let (alpha, gamma, rho, sigma) = (1.0, 1.0 + 2.0 / nf, 0.75 - 1.0 / (2.0 * nf), 1.0 - 1.0 / nf);
    let mut simplex: Vec<Vec<f64>> = vec![start.to_vec()];
    for i in 0..n {
        let mut p = start.to_vec();
        p[i] += scale[i];
        simplex.push(p);
    }
    let mut values: Vec<f64> = simplex.iter().map(|p| f(p)).collect();
    let mut iterations = 0;
    let mut converged = false;
    while iterations < max_iter {
        iterations += 1;
        let mut order: Vec<usize> = (0..=n).collect();
        order.sort_by(|&a, &b| values[a].total_cmp(&values[b]));
        simplex = order.iter().map(|&i| simplex[i].clone()).collect();
        values = order.iter().map(|&i| values[i]).collect();
        let spread_f = (values[n] - values[0]).abs() <= tol * (values[0].abs() + tol);
        let spread_x = simplex[1..].iter().all(|p| {
            p.iter()
                .zip(&simplex[0])
                .all(|(a, b)| (a - b).abs() <= tol * (b.abs() + tol))
        });
        if spread_f && spread_x {
            converged = true;
            break;
        }
        let centroid: Vec<f64> = (0..n)
            .map(|j| simplex[..n].iter().map(|p| p[j]).sum::<f64>() / nf)
            .collect();
        let toward = |coef: f64| -> Vec<f64> {
            (0..n)
                .map(|j| centroid[j] + coef * (simplex[n][j] - centroid[j]))
                .collect()
        };
        let reflected = toward(-alpha);
        let fr = f(&reflected);
        if fr < values[0] {
            let expanded = toward(-alpha * gamma);
            let fe = f(&expanded);
            if fe < fr {
                simplex[n] = expanded;
                values[n] = fe;
            } else {
                simplex[n] = reflected;
                values[n] = fr;
            }
        } else if fr < values[n - 1] {
            simplex[n] = reflected;
            values[n] = fr;
        } else {
            let (contracted, fc) = if fr < values[n] {
                let c = toward(-alpha * rho);
                let v = f(&c);
                (c, v)
            } else {
                let c = toward(rho);
                let v = f(&c);
                (c, v)
            };
            if fc < values[n].min(fr) {
                simplex[n] = contracted;
                values[n] = fc;
            } else {
                for i in 1..=n {
                    simplex[i] = (0..n)
                        .map(|j| simplex[0][j] + sigma * (simplex[i][j] - simplex[0][j]))
                        .collect();
                    values[i] = f(&simplex[i]);
                }
            }
        }
    }
    let best = (0..=n)
        .min_by(|&a, &b| values[a].total_cmp(&values[b]))
        .unwrap_or(0);
    Minimum {
        x: simplex[best].clone(),
        value: values[best],
        iterations,
        converged,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_rosenbrock_minimum() {
        let f = |x: &[f64]| (1.0 - x[0]).powi(2) + 100.0 * (x[1] - x[0] * x[0]).powi(2);
        let m = nelder_mead(f, &[-1.2, 1.0], &[0.1, 0.1], 1e-12, 5000);
        assert!(m.converged);
        assert!(
            (m.x[0] - 1.0).abs() < 1e-5 && (m.x[1] - 1.0).abs() < 1e-5,
            "{:?}",
            m.x
        );
    }
}
