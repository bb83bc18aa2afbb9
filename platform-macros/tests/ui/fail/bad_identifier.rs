use platform_core::Resource;

#[derive(Resource)]
#[resource(table = "Invoices", name = "the-invoice", plural = "1nvoices")]
struct Invoice {
    #[resource(primary_key)]
    id: i64,
    #[resource(column = "Number")]
    number: String,
    #[allow(non_snake_case)]
    dueDate: String,
}

#[derive(Resource)]
#[resource(table = "platform_users")]
struct User {
    #[resource(primary_key)]
    id: i64,
    #[resource(column = "login")]
    email: String,
    login: String,
}

fn main() {}
