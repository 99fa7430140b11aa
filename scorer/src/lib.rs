//! The HTTP scorer (axum): `GET /customers/{id}/clv` from live features and the production model, with
//! health, readiness and `/metrics`.
//!
//! Not built yet: the issue "Scorer" fills this crate.
