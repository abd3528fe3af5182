//! Scraping (being written).
