// TollgateReports: chargeback documents (CSV, JSON), the FOCUS export and price listings, computed from the Store's chargeback facts.
