use platform_core::Resource;

// Misspelt keys get the nearest known one; a key of the other level gets
// where it belongs; a word too far from every key gets no guess.
#[derive(Resource)]
#[resource(tabel = "invoices", plurl = "invoices", softdelete, sortable)]
struct Invoice {
    #[resource(primary_key)]
    id: i64,
    #[resource(sortabel, uniqe, filtr)]
    number: String,
    #[resource(maxlength = 20, serch, tabe = "x")]
    note: String,
    #[resource(wibblewobble)]
    total: i64,
}

fn main() {}
