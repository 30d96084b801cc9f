"""Demo data for the reference stores, apart from the connectors: the fictional people
(population.py), the SMS and customer-account demo and what it knows of its data (demo.py,
sms.py, customer_account.py), one module per other connector's store, and every population-
seeded store filled at once (stores.py). Seeding clears a store: demo and test stores only."""
