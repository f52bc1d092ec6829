//! Which vault a command talks to.
