pub mod kafka;
pub mod lag;
