mod auth;
mod errors;
mod output;
mod pub_sub;
mod signals;
mod unsub;
