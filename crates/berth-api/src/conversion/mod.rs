//! Conversion between served versions of one kind (only HPA autoscaling/v1 <-> v2 differs).

pub mod hpa;
