//! Strongly connected components (Tarjan's algorithm, iterative so a
//! 20,000-step flow cannot overflow the stack).

use crate::flow::Pc;

/// Successor lists of every node, stored flat (one allocation, not one per
/// node: a 1,000-step flow has thousands of nodes).
#[derive(Debug, Default)]
pub struct Graph {
    starts: Vec<usize>,
    edges: Vec<Pc>,
    ends: Vec<bool>,
}

impl Graph {
    /// Room for `n` nodes.
    pub fn with_capacity(n: usize) -> Graph {
        Graph {
            starts: Vec::with_capacity(n + 1),
            edges: Vec::with_capacity(n * 2),
            ends: Vec::with_capacity(n),
        }
    }

    /// Adds the next node: its successors and whether it can end the call.
    pub fn push(&mut self, successors: &[Pc], ends: bool) {
        self.starts.push(self.edges.len());
        self.edges.extend_from_slice(successors);
        self.ends.push(ends);
    }

    /// Number of nodes.
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    /// Successors of node `v`.
    pub fn successors(&self, v: usize) -> &[Pc] {
        let start = self.starts.get(v).copied().unwrap_or(0);
        let end = self.starts.get(v + 1).copied().unwrap_or(self.edges.len());
        self.edges.get(start..end).unwrap_or(&[])
    }

    /// True when node `v` can end the call.
    pub fn ends(&self, v: usize) -> bool {
        self.ends.get(v).copied().unwrap_or(false)
    }
}

/// Components of `graph`, each sorted by pc.
pub fn components(graph: &Graph) -> Vec<Vec<Pc>> {
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
            let succ = graph.successors(v).get(*i).map(|s| *s as usize);
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
        let mut g = Graph::default();
        g.push(&[1], false);
        g.push(&[2], false);
        g.push(&[1, 3], false);
        g.push(&[], true);
        let mut c = components(&g);
        c.sort();
        assert_eq!(c, vec![vec![0], vec![1, 2], vec![3]]);
    }
}
