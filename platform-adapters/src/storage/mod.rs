//! Storage back ends: [`S3Storage`] (feature `storage-s3`), the
//! [`Storage`](platform_core::storage::Storage) trait on Amazon S3 and
//! S3-compatible servers (MinIO, Garage, Ceph, moto...).

mod s3;

pub use s3::{S3Builder, S3Storage};
