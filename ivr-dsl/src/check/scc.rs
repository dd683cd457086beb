//! Strongly connected components (Tarjan's algorithm, iterative so a
//! 20,000-step flow cannot overflow the stack).

use crate::flow::Pc;

/// Components of `graph` (successor lists), each sorted by pc.
pub fn components(graph: &[(Vec<Pc>, bool)]) -> Vec<Vec<Pc>> {
    let n = graph.len();
    const UNSEEN: usize = usize::MAX;
    let mut index = vec![UNSEEN; n];
    let mut low = vec![0usize; n];
    let mut on_stack = vec![false; n];
    let mut stack: Vec<usize> = Vec::new();
    let mut out = Vec::new();
    let mut counter = 0usize;
    for root in 0..n {
        if index.get(root).copied() != Some(UNSEEN) {
            continue;
        }
        // (node, next successor to look at)
        let mut work: Vec<(usize, usize)> = vec![(root, 0)];
        while let Some(&mut (v, ref mut i)) = work.last_mut() {
            if *i == 0 && index.get(v).copied() == Some(UNSEEN) {
                set(&mut index, v, counter);
                set(&mut low, v, counter);
                counter += 1;
                stack.push(v);
                set(&mut on_stack, v, true);
            }
            let succ = graph
                .get(v)
                .and_then(|(s, _)| s.get(*i))
                .map(|s| *s as usize);
            *i += 1;
            match succ {
                Some(w) if w < n => {
                    if index.get(w).copied() == Some(UNSEEN) {
                        work.push((w, 0));
                    } else if on_stack.get(w).copied().unwrap_or(false) {
                        let m = low
                            .get(v)
                            .copied()
                            .unwrap_or(0)
                            .min(index.get(w).copied().unwrap_or(0));
                        set(&mut low, v, m);
                    }
                }
                Some(_) => {}
                None => {
                    work.pop();
                    if let Some(&(parent, _)) = work.last() {
                        let m = low
                            .get(parent)
                            .copied()
                            .unwrap_or(0)
                            .min(low.get(v).copied().unwrap_or(0));
                        set(&mut low, parent, m);
                    }
                    if low.get(v) == index.get(v) {
                        let mut comp = Vec::new();
                        while let Some(w) = stack.pop() {
                            set(&mut on_stack, w, false);
                            comp.push(Pc::try_from(w).unwrap_or(Pc::MAX));
                            if w == v {
                                break;
                            }
                        }
                        comp.sort_unstable();
                        out.push(comp);
                    }
                }
            }
        }
    }
    out
}

fn set<T>(v: &mut [T], i: usize, x: T) {
    if let Some(slot) = v.get_mut(i) {
        *slot = x;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_cycles() {
        // 0 -> 1 -> 2 -> 1, 2 -> 3
        let g = vec![
            (vec![1], false),
            (vec![2], false),
            (vec![1, 3], false),
            (vec![], true),
        ];
        let mut c = components(&g);
        c.sort();
        assert_eq!(c, vec![vec![0], vec![1, 2], vec![3]]);
    }
}
