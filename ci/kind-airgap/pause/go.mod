module pointsmesh.local/pause

go 1.22
