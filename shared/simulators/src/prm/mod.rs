//! PRM simulator.
