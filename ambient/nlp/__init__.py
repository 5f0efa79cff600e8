"""Clinical NLP: findings (problems, symptoms, medications, allergies, vitals, orders) with ConText."""
