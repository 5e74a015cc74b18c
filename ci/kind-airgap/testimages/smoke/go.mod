module pointsmesh.local/smoke

go 1.22
