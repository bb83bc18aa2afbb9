use platform_core::Resource;

// A type of the host's own is refused by the `FieldValue` bound, at the
// field's type, with the list of supported types.
struct Money(i64);

#[derive(Resource)]
struct Invoice {
    #[resource(primary_key)]
    id: i64,
    total: Money,
    refund: Option<Money>,
}

fn main() {}
