"""Smart metering and billing: meter data management, tariffs, invoices and payments."""
